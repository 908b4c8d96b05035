package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lockstart"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/state"
)

func init() {
	register("lockstart", "boot step: wait for LUN and lock managers, start lockspaces, re-activate held LVs", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("lockstart", flag.ContinueOnError)
		cfgPath := fs.String("config", config.DefaultPath, "agent configuration file")
		timeout := fs.Duration("timeout", 0, "give up after this long (default: lvm.lock_start_timeout from the config)")
		poll := fs.Duration("poll", 500*time.Millisecond, "interval between checks while waiting")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockstart:", err)
			return 2
		}
		held, err := state.OpenHeld(cfg.StateDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockstart:", err)
			return 1
		}
		if *timeout == 0 {
			*timeout = cfg.LVM.LockStartTimeout
		}
		for _, vg := range cfg.LVM.VolumeGroups {
			// A reboot since a fence undid it (and a fence-failed
			// journal would otherwise gate every change forever).
			j, err := recovery.SettleEarlierBoot(cfg.StateDir, "", vg, recovery.CurrentBootID())
			if err != nil {
				fmt.Fprintf(os.Stderr, "lockstart: VG %s: cannot settle a recovery journal of an earlier boot: %v\n", vg, err)
			} else if j != nil {
				fmt.Printf("VG %s: fence of an earlier boot (phase %s, %s) settled by the reboot; journal kept as %s\n",
					vg, j.Phase, j.Started.Format(time.RFC3339), recovery.EarlierBootPath(cfg.StateDir, vg))
			}
		}
		// stdout is the journal under systemd: one line per change in what
		// is being waited for.
		progress := func(s string) { fmt.Println(s) }
		host := lockstart.NewMachine(&run.Local{DefaultTimeout: cfg.LVM.CommandTimeout}, cfg.LVM.CommandTimeout)
		res, err := lockstart.Run(ctx, host, lockstart.Options{
			VolumeGroups:   cfg.LVM.VolumeGroups,
			MultipathAlias: cfg.LVM.MultipathAlias,
			Timeout:        *timeout,
			Poll:           *poll,
			Held:           held.List(),
			Progress:       progress,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockstart failed:", err)
			return 1
		}
		fmt.Printf("lockstart done: lockspaces of %v joined, %d LVs re-activated, %d left to the agent (locked elsewhere)\n",
			cfg.LVM.VolumeGroups, len(res.Activated), len(res.Conflicts))
		return 0
	})
}
