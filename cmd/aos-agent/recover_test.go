package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
)

// The kill hook fences h1 on the simulator; `recover` refuses while the
// paths are down (also after --wait runs out), then brings lv1 back.
func TestRecoverCommandOnSimulator(t *testing.T) {
	cfg, stateDir := writeKillHookConfig(t, "")
	clk := sim.NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	var c *sim.Cluster
	var hookErr bytes.Buffer
	c = sim.NewCluster(sim.Options{
		Hosts:     []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}},
		IOTimeout: 10 * time.Second, JoinTime: -1, Clock: clk,
		RunKill: func(host string, argv []string) int {
			return killHook(context.Background(), append([]string{"--config", cfg}, argv[2:]...), c.Host(host), &hookErr)
		},
	})
	h1 := c.Host("h1")
	for _, cmd := range []string{"vgchange --lock-start vol", "lvcreate -an -n lv1 -L 64m vol", "lvchange -aey vol/lv1"} {
		if _, err := h1.Run(context.Background(), run.Cmd{Argv: strings.Fields(cmd)}); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	// lv1's mode comes from held.json, which the daemon writes on activation.
	held, err := state.OpenHeld(stateDir)
	if err == nil {
		err = held.Set(state.HeldLV{VG: "vol", LV: "lv1", Mode: state.Exclusive})
	}
	if err != nil {
		t.Fatal(err)
	}
	c.SetKillCommand("h1", []string{"/usr/local/sbin/aos-agent", "kill-hook"})
	c.FailPaths("h1", true)
	clk.Advance(12 * 10 * time.Second)
	if st := c.State("h1"); st.Active["lv1"] != "error" {
		t.Fatalf("not fenced: %+v\n%s", st, hookErr.String())
	}

	var stdout, stderr bytes.Buffer
	if code := recoverVG(context.Background(), []string{"--config", cfg, "--wait", "1ms", "vol"}, h1, &stdout, &stderr, time.Millisecond); code != 1 ||
		!strings.Contains(stderr.String(), "no active path") || !strings.Contains(stdout.String(), "NOT finished") {
		t.Fatalf("paths down: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}

	c.RestorePaths("h1")
	stdout.Reset()
	stderr.Reset()
	if code := recoverVG(context.Background(), []string{"--config", cfg, "vol"}, h1, &stdout, &stderr, time.Millisecond); code != 0 ||
		!strings.Contains(stdout.String(), "re-acquired lv1 (ex)") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	{
		st := c.State("h1")
		if st.Active["lv1"] != "linear" {
			t.Fatalf("after recover: st.Active[\"lv1\"] = %q, want \"linear\"", st.Active["lv1"])
		}
		if st.Locks["lv1"] != "ex" {
			t.Fatalf("after recover: st.Locks[\"lv1\"] = %q, want \"ex\"", st.Locks["lv1"])
		}
		if !st.LockspaceJoined {
			t.Fatal("after recover: st.LockspaceJoined = false, want true")
		}
	}
	if code := recoverVG(context.Background(), []string{"--config", cfg}, h1, &stdout, &stderr, 0); code != 2 {
		t.Fatalf("without a VG: exit %d", code)
	}
}
