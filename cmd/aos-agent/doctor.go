package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/doctor"
	"github.com/aos-agent/aos-agent/internal/run"
)

func init() {
	register("doctor", "preflight checks of this host (pass/warn/fail with fixes); exit 1 on any fail", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "print the checks as JSON")
		root := fs.String("root", "/", "read configuration files under this root")
		cfgPath := fs.String("config", config.DefaultPath, "agent configuration file")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(filepath.Join(*root, *cfgPath))
		if err != nil {
			fmt.Fprintln(os.Stderr, "doctor:", err)
			return 2
		}
		checks := doctor.Run(ctx, doctor.Env{
			Root:           *root,
			Runner:         &run.Local{},
			Timeout:        cfg.LVM.CommandTimeout,
			VolumeGroups:   cfg.LVM.VolumeGroups,
			MultipathAlias: cfg.LVM.MultipathAlias,
		})
		write := doctor.WriteTable
		if *asJSON {
			write = doctor.WriteJSON
		}
		if err := write(os.Stdout, checks); err != nil {
			fmt.Fprintln(os.Stderr, "doctor:", err)
			return 2
		}
		if doctor.Failed(checks) {
			return 1
		}
		return 0
	})
}
