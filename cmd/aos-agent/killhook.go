package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
)

// kill-hook is lvm.conf's lvmlockctl_kill_command: lvmlockctl runs it with
// the VG appended when sanlock declares the VG's lease lost. Exit 0 tells
// lvmlockctl every LV of the VG is offline (it then drops the locks and the
// watchdog stands down); anything else leaves the host to the watchdog.
// Its stdout is a pipe nobody reads, so everything goes to stderr (journald).
func init() {
	register("kill-hook", "lvmlockctl_kill_command: fence a VG whose sanlock lease was lost (error-table its LVs)", func(ctx context.Context, args []string) int {
		return killHook(ctx, args, &run.Local{}, os.Stderr)
	})
}

func killHook(ctx context.Context, args []string, r run.Runner, stderr io.Writer) int {
	fs := flag.NewFlagSet("kill-hook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "agent configuration file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: aos-agent kill-hook [--config PATH] VG")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	vg := fs.Arg(0)
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "aos-agent kill-hook: "+format+"\n", a...) }
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		// A stray key must not turn a fence into the watchdog's reset of
		// the whole host: fence with every key that reads and defaults for
		// the rest. install and doctor report such errors beforehand.
		logf("configuration errors; fencing with what could be read: %v", err)
		cfg, _ = config.LoadLenient(*cfgPath)
	}
	// lvmlockctl names only VGs whose lease this host lost; a VG list that
	// could not be read does not stop the fence.
	if len(cfg.LVM.VolumeGroups) > 0 && !slices.Contains(cfg.LVM.VolumeGroups, vg) {
		logf("VG %q is not in [lvm] volume_groups %v: not fencing it", vg, cfg.LVM.VolumeGroups)
		return 1
	}
	if cfg.Recovery.Mode == "off" {
		logf("[recovery] mode = off: not fencing VG %s, the watchdog will reset this host", vg)
		return 1
	}
	_, err = recovery.Fence(ctx, recovery.Deps{
		Runner:         r,
		StateDir:       cfg.StateDir,
		RuntimeDir:     cfg.RuntimeDir,
		MultipathAlias: cfg.LVM.MultipathAlias,
		Log:            logf,
	}, vg)
	if err != nil {
		return 1
	}
	return 0
}
