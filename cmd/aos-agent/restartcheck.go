package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/state"
)

// restart-check is what the package's upgrade asks before it restarts
// aos-agent.service. A restart of that unit alone leaves every lock where
// it is: lvmlockd and sanlock hold the locks, the lock-start unit is not
// restarted, held.json stays, and the RPC server drains (consumers
// cancelled, calls in flight finish, queued calls wait in the broker for the
// new process). What a restart would interrupt is checked here.
func init() {
	register("restart-check", "exit 0 if restarting aos-agent.service now interrupts nothing (the package's upgrade asks first)", func(ctx context.Context, args []string) int {
		return restartCheck(ctx, args, &run.Local{}, os.Stdout)
	})
}

func restartCheck(ctx context.Context, args []string, r run.Runner, out io.Writer) int {
	fs := flag.NewFlagSet("restart-check", flag.ContinueOnError)
	fs.SetOutput(out)
	cfgPath := fs.String("config", config.DefaultPath, "agent configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if reason := restartBlocker(ctx, r, *cfgPath); reason != "" {
		fmt.Fprintln(out, "restart-check: not now:", reason)
		return 1
	}
	fmt.Fprintln(out, "restart-check: safe: serving, no fence or recovery, no wipe or copy in flight")
	return 0
}

// restartBlocker says why aos-agent.service must not be restarted now, or "".
func restartBlocker(ctx context.Context, r run.Runner, cfgPath string) string {
	res, err := r.Run(ctx, run.Cmd{Argv: []string{"systemctl", "show", "--property=ActiveState,StatusText", "aos-agent.service"}, Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Sprintf("cannot ask systemd: %v", err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	if st := props["ActiveState"]; st != "active" {
		// An agent that is not running stays so: an upgrade never starts it.
		return "aos-agent.service is " + st
	}
	// The agent's STATUS= (agent.Daemon.health): "serving VGs" only when
	// every lockspace is joined, the broker connected and no probe hung.
	// Waiting or degraded, a restart would only hide what it reports.
	if st := props["StatusText"]; !strings.HasPrefix(st, "serving ") {
		return fmt.Sprintf("the agent reports %q", st)
	}
	// The new binary must accept the configuration, or the restart takes
	// the agent down.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "this version does not accept the configuration: " + err.Error()
	}
	for _, vg := range cfg.LVM.VolumeGroups {
		j, ok, err := recovery.FindJournal(cfg.StateDir, cfg.RuntimeDir, vg)
		if err != nil {
			return fmt.Sprintf("VG %s: unreadable recovery journal: %v", vg, err)
		}
		if ok {
			return fmt.Sprintf("VG %s is fenced, recovery journal phase %s: restart once `aos-agent recover` is done", vg, j.Phase)
		}
	}
	// A wipe, clone or snapshot holds its LVs in transient.json for its
	// whole length; the stop's drain would cancel one that runs longer.
	transient, err := state.OpenTransient(cfg.StateDir)
	if err != nil {
		return "cannot read transient.json: " + err.Error()
	}
	if lvs := transient.List(); len(lvs) > 0 {
		names := make([]string, len(lvs))
		for i, lv := range lvs {
			names[i] = lv.VG + "/" + lv.LV
		}
		return "a wipe or copy is in flight on " + strings.Join(names, ", ")
	}
	return ""
}
