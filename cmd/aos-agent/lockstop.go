package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lockstart"
	"github.com/aos-agent/aos-agent/lvm"
)

// lockstop is aos-agent-lockstart.service's ExecStop: at shutdown, after the
// workloads and before sanlock and lvmlockd, release the idle LVs and stop
// the lockspaces so the lock managers can stop.
func init() {
	register("lockstop", "shutdown step: deactivate idle LVs of the configured VGs and stop their lockspaces (held.json kept)", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("lockstop", flag.ContinueOnError)
		cfgPath := fs.String("config", config.DefaultPath, "agent configuration file")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockstop:", err)
			return 2
		}
		lv := lvm.New(&run.Local{DefaultTimeout: cfg.LVM.CommandTimeout}, lvm.Options{VolumeGroups: cfg.LVM.VolumeGroups, Timeout: cfg.LVM.CommandTimeout})
		status := 0
		for _, r := range lockstart.Stop(ctx, lv, cfg.LVM.VolumeGroups, func(s string) { fmt.Println(s) }) {
			if !r.Stopped {
				status = 1
			}
		}
		return status
	})
}
