package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
)

// recoverPollInterval spaces the attempts of --wait while the paths are down.
const recoverPollInterval = 5 * time.Second

// recover is run by the operator (or automation) once the SAN is back after
// a fence: it undoes the kill hook's work and re-locks the LVs this host
// still may use. Until it succeeds the daemon refuses mutations on the VG.
func init() {
	register("recover", "bring a fenced VG back once its storage returns (re-acquire LV locks, report LVs lost to other hosts)", func(ctx context.Context, args []string) int {
		return recoverVG(ctx, args, &run.Local{}, os.Stdout, os.Stderr, recoverPollInterval)
	})
}

func recoverVG(ctx context.Context, args []string, r run.Runner, stdout, stderr io.Writer, poll time.Duration) int {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "agent configuration file")
	wait := fs.Duration("wait", 0, "keep retrying this long while the multipath map has no active path")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: aos-agent recover [--config PATH] [--wait DURATION] VG")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *wait < 0 {
		fs.Usage()
		return 2
	}
	vg := fs.Arg(0)
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "aos-agent recover: "+format+"\n", a...) }
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if !slices.Contains(cfg.LVM.VolumeGroups, vg) {
		logf("VG %q is not in [lvm] volume_groups %v", vg, cfg.LVM.VolumeGroups)
		return 1
	}
	d := recovery.Deps{Runner: r, StateDir: cfg.StateDir, RuntimeDir: cfg.RuntimeDir, MultipathAlias: cfg.LVM.MultipathAlias,
		LibvirtURI: cfg.Recovery.LibvirtURI, LockStartTimeout: cfg.LVM.LockStartTimeout, Log: logf}
	deadline := time.Now().Add(*wait)
	for {
		rep, err := recovery.Recover(ctx, d, vg)
		if errors.Is(err, recovery.ErrPathsDown) && time.Now().Add(poll).Before(deadline) {
			logf("%v: retrying in %v", err, poll)
			select {
			case <-ctx.Done():
				return 1
			case <-time.After(poll):
			}
			continue
		}
		fmt.Fprint(stdout, rep)
		if err != nil {
			logf("%v", err)
			return 1
		}
		return 0
	}
}
