package lockstart

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
)

// On the simulated two-host cluster: h2 boots with its SAN paths down, they
// come back while lockstart waits; it then joins the lockspace and takes back
// its own LVs in their modes, while an LV h1 took meanwhile is left alone.
func TestSimulatorLUNLateRejoinAndReactivate(t *testing.T) {
	c := sim.NewCluster(sim.Options{
		Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}},
		// 1000×: a 20 s lockspace join takes 20 ms; nothing here asserts time.
		Clock: sim.NewScaledClock(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1000),
	})
	ctx := context.Background()
	h1 := NewMachine(c.Host("h1"), 5*time.Second)
	opts := func(held ...state.HeldLV) Options {
		return Options{VolumeGroups: []string{"vol"}, MultipathAlias: "lun0", Timeout: time.Minute, Poll: time.Millisecond, Held: held}
	}
	if _, err := Run(ctx, h1, opts()); err != nil {
		t.Fatal("h1:", err)
	}
	for _, lv := range []string{"lv1", "lv2", "lv3"} {
		if _, err := c.Host("h1").Run(ctx, run.Cmd{Argv: []string{"lvcreate", "-an", "-n", lv, "-L", "64m", "vol"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Host("h1").Run(ctx, run.Cmd{Argv: []string{"lvchange", "-aey", "vol/lv3"}}); err != nil {
		t.Fatal(err)
	}

	c.FailPaths("h2", true)
	var mapsQueries atomic.Int32
	h2runner := run.Func(func(ctx context.Context, cmd run.Cmd) (run.Result, error) {
		// The LUN shows up after lockstart has looked twice.
		if strings.Join(cmd.Argv, " ") == "multipathd show maps json" && mapsQueries.Add(1) == 3 {
			c.RestorePaths("h2")
		}
		return c.Host("h2").Run(ctx, cmd)
	})
	var progress []string
	o := opts(
		state.HeldLV{VG: "vol", LV: "lv1", Mode: state.Exclusive},
		state.HeldLV{VG: "vol", LV: "lv2", Mode: state.Shared},
		state.HeldLV{VG: "vol", LV: "lv3", Mode: state.Exclusive},
	)
	o.Progress = func(s string) { progress = append(progress, s) }
	// Short per-command timeout: with every path down LVM queues I/O and
	// hangs, as on a real host, until the command is killed.
	res, err := Run(ctx, NewMachine(h2runner, 200*time.Millisecond), o)
	if err != nil {
		t.Fatalf("h2: %v\nprogress:\n%s", err, strings.Join(progress, "\n"))
	}
	if len(res.Activated) != 2 {
		t.Fatalf("result: len(res.Activated) = %v, want 2", len(res.Activated))
	}
	if len(res.Conflicts) != 1 {
		t.Fatalf("result: len(res.Conflicts) = %v, want 1", len(res.Conflicts))
	}
	if res.Conflicts[0].LV != "lv3" {
		t.Errorf("result: res.Conflicts[0].LV = %q, want \"lv3\"", res.Conflicts[0].LV)
	}
	st := c.State("h2")
	if !st.LockspaceJoined {
		t.Error("h2 state: st.LockspaceJoined = false, want true")
	}
	if st.Locks["lv1"] != "ex" {
		t.Errorf("h2 state: st.Locks[\"lv1\"] = %q, want \"ex\"", st.Locks["lv1"])
	}
	if st.Locks["lv2"] != "sh" {
		t.Errorf("h2 state: st.Locks[\"lv2\"] = %q, want \"sh\"", st.Locks["lv2"])
	}
	if st.Locks["lv3"] != "" {
		t.Errorf("h2 state: st.Locks[\"lv3\"] = %q, want \"\"", st.Locks["lv3"])
	}
	if !strings.Contains(progress[0], "multipath map lun0 has no active path") {
		t.Errorf("first progress line: %q", progress[0])
	}
}

func TestSimulatorLvmlockdDown(t *testing.T) {
	c := sim.NewCluster(sim.Options{
		Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}},
		Clock: sim.NewScaledClock(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1000),
	})
	c.CrashDaemon("h1", "lvmlockd")
	_, err := Run(context.Background(), NewMachine(c.Host("h1"), 5*time.Second),
		Options{VolumeGroups: []string{"vol"}, MultipathAlias: "lun0", Timeout: 300 * time.Millisecond, Poll: time.Millisecond})
	if err == nil {
		t.Fatal("got: err = nil, want non-nil")
	}
	if !strings.Contains(err.Error(), "lvmlockd not running") {
		t.Fatalf("got: err.Error() = %q, want it to contain \"lvmlockd not running\"", err.Error())
	}
	if strings.Contains(err.Error(), "sanlock not running") {
		t.Errorf("got: err.Error() = %q, want it not to contain \"sanlock not running\"", err.Error())
	}
	if c.State("h1").LockspaceJoined {
		t.Error("lockspace joined without lvmlockd")
	}
}
