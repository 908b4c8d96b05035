package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sim"
)

func writeKillHookConfig(t *testing.T, extra string) (path, stateDir string) {
	return writeKillHookConfigVGs(t, "vol", extra)
}

func writeKillHookConfigVGs(t *testing.T, vgs, extra string) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	path = filepath.Join(dir, "aos-agent.conf")
	conf := "[DEFAULT]\nstate_dir = " + stateDir + "\nruntime_dir = " + filepath.Join(dir, "run") +
		"\n[lvm]\nvolume_groups = " + vgs + "\nmultipath_alias = lun0\n" + extra
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

// lvmlockctl runs the hook (configured without --config, so tests add it
// before the VG) on a simulated h1 that lost its storage: exit 0, h1 is
// fenced and not reset.
func TestKillHookOnSimulatedLeaseLoss(t *testing.T) {
	path, dir := writeKillHookConfig(t, "")
	killHookFencesSimulatedHost(t, path, dir)
}

// A configuration with errors (a stray key, an unreadable VG list) still
// fences: only its good keys are used. Failing would get the host reset.
func TestKillHookFencesDespiteConfigErrors(t *testing.T) {
	t.Run("stray key", func(t *testing.T) {
		path, dir := writeKillHookConfig(t, "[lvm]\ncommand_timeout = 60\nrecovery_typo = 1\n")
		killHookFencesSimulatedHost(t, path, dir)
	})
	t.Run("volume_groups unreadable", func(t *testing.T) {
		path, dir := writeKillHookConfigVGs(t, ",", "")
		killHookFencesSimulatedHost(t, path, dir)
	})
}

func killHookFencesSimulatedHost(t *testing.T, cfg, stateDir string) {
	t.Helper()
	clk := sim.NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	var c *sim.Cluster
	var stderr bytes.Buffer
	exits := []int{}
	c = sim.NewCluster(sim.Options{
		Hosts:     []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}},
		IOTimeout: 10 * time.Second, JoinTime: -1, Clock: clk,
		RunKill: func(host string, argv []string) int {
			// argv is "/usr/local/sbin/aos-agent kill-hook vol"; main passes argv[2:].
			code := killHook(context.Background(), append([]string{"--config", cfg}, argv[2:]...), c.Host(host), &stderr)
			exits = append(exits, code)
			return code
		},
	})
	for _, cmd := range []string{"vgchange --lock-start vol", "lvcreate -an -n lv1 -L 64m vol", "lvchange -aey vol/lv1"} {
		if _, err := c.Host("h1").Run(context.Background(), run.Cmd{Argv: strings.Fields(cmd)}); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	c.SetKillCommand("h1", []string{"/usr/local/sbin/aos-agent", "kill-hook"})
	c.FailPaths("h1", true)
	clk.Advance(12 * 10 * time.Second)
	st := c.State("h1")
	if len(exits) != 1 {
		t.Fatalf("exits: len(exits) = %v, want 1", len(exits))
	}
	if exits[0] != 0 {
		t.Fatalf("exits: exits[0] = %v, want 0", exits[0])
	}
	if st.Resets != 0 {
		t.Fatalf("exits: st.Resets = %v, want 0", st.Resets)
	}
	if st.Active["lv1"] != "error" {
		t.Fatalf("exits: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
	}
	if len(st.Locks) != 0 {
		t.Fatalf("exits: len(st.Locks) = %v, want 0", len(st.Locks))
	}
	if !strings.Contains(stderr.String(), "dmsetup wipe_table (1 LV, one command): ok") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
	{
		j, ok, err := recovery.ReadJournal(stateDir, "vol")
		if err != nil {
			t.Fatalf("journal: err = %v, want nil", err)
		}
		if !ok {
			t.Fatal("journal: ok = false, want true")
		}
		if j.Phase != recovery.PhaseFenced {
			t.Fatalf("journal: j.Phase = %v, want %v", j.Phase, recovery.PhaseFenced)
		}
	}
}

// Refusals run no command at all (the scripted runner has no steps) and
// exit non-zero, leaving the host to the watchdog.
func TestKillHookRefusals(t *testing.T) {
	cfg, _ := writeKillHookConfig(t, "")
	cfgOff, _ := writeKillHookConfig(t, "[recovery]\nmode = off\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown VG", []string{"--config", cfg, "other"}, 1, `VG "other" is not in [lvm] volume_groups [vol]`},
		{"recovery off", []string{"--config", cfgOff, "vol"}, 1, "mode = off"},
		{"no VG", []string{"--config", cfg}, 2, "usage: aos-agent kill-hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			{
				code := killHook(context.Background(), tc.args, run.NewScripted(t), &stderr)
				if code != tc.code {
					t.Fatalf("exit: code = %v, want %v", code, tc.code)
				}
				if !strings.Contains(stderr.String(), tc.msg) {
					t.Fatalf("exit: stderr.String() = %q, want it to contain tc.msg", stderr.String())
				}
			}
		})
	}
}
