package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// A host holding no LV lock loses every path (the lab's scenario
// lease-loss-unheld): sanlock runs no killpath, so nothing fences and no
// journal is written; sanlock drops the lockspace and lvmlockd keeps its
// own, which locks nothing. The daemon refuses mutations meanwhile, and once
// the paths are back starts the lockspace again by itself; the host then
// activates as before. The first attempt, made while the lease storage
// still fails, drops lvmlockd's lockspace too: a restarted agent carries on
// from its marker.
func TestDaemonRejoinsALockspaceSanlockDropped(t *testing.T) {
	const ioTimeout = 10 * time.Second
	clock := sim.NewManualClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	cfg := rejoinConfig(t)
	c := sim.NewCluster(sim.Options{
		Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}}, VG: "vol",
		Clock: clock, IOTimeout: ioTimeout, JoinTime: -1,
		RunKill: func(host string, argv []string) int {
			t.Errorf("kill command ran on %s: nothing was held", host)
			return 1
		},
	})
	c.SetKillCommand("h1", []string{"/usr/local/sbin/aos-agent", "kill-hook"})
	ctx := context.Background()
	for _, h := range []string{"h1", "h2"} {
		mustRun(t, c, h, "vgchange", "--lock-start", "vol")
	}
	mustRun(t, c, "h1", "lvcreate", "-an", "-n", "a1", "-L", "64m", "vol")
	start := func() *Daemon {
		d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop(), PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := start()
	poll := func() sanlock.State { return healthPoll(ctx, d) }
	if st := poll(); st != sanlock.StateJoined {
		t.Fatalf("before: %s", st)
	}

	// Lease storage fails while every path still looks active (the map's
	// checker has not noticed): nothing held, so no kill.
	c.FailLeaseStorage("h1")
	clock.Advance(8 * ioTimeout)
	if st := c.State("h1"); st.KillRuns != 0 || st.LockspaceJoined {
		t.Fatalf("after the renewal failed: %+v, want no kill and no lockspace in sanlock", st)
	}
	if st := d.monitor.Poll(ctx).LockspaceState("vol"); st != sanlock.StateDropped {
		t.Fatalf("agent sees %s, want dropped", st)
	}
	// The first attempt: lvmlockd's lockspace dropped, the start refused.
	if st := poll(); st != sanlock.StateAbsent {
		t.Fatalf("after a rejoin on failing storage: %s, want absent", st)
	}
	if !recovery.RejoinPending(d.recoveryDeps(), "vol") {
		t.Fatal("no rejoin marker after a failed rejoin")
	}
	if got := testutil.ToFloat64(d.auto.rejoins.WithLabelValues("vol", recoveryFailed)); got != 1 {
		t.Fatalf("aos_lockspace_rejoins_total{result=failed} = %v, want 1", got)
	}
	if _, err := d.volumes.Activate(ctx, volumes.Ref{VG: "vol", LV: "a1"}, volumes.Exclusive); !errors.Is(err, errdefs.ErrLockspaceNotStarted) && !errors.Is(err, errdefs.ErrLockspaceLost) {
		t.Fatalf("activate while not rejoined: %v", err)
	}

	// The agent restarts; the storage comes back; past the backoff the new
	// agent starts the lockspace from the marker.
	d = start()
	c.RestorePaths("h1")
	clock.Advance(time.Minute)
	if st := poll(); st != sanlock.StateJoined {
		t.Fatalf("after storage came back: %s, want joined", st)
	}
	if recovery.RejoinPending(d.recoveryDeps(), "vol") {
		t.Fatal("rejoin marker left after the lockspace joined")
	}
	if got := testutil.ToFloat64(d.auto.rejoins.WithLabelValues("vol", recoveryDone)); got != 1 {
		t.Fatalf("aos_lockspace_rejoins_total{result=done} = %v, want 1", got)
	}
	if _, err := d.volumes.Activate(ctx, volumes.Ref{VG: "vol", LV: "a1"}, volumes.Exclusive); err != nil {
		t.Fatalf("activate after the rejoin: %v", err)
	}
	if st := c.State("h1"); st.Locks["a1"] != "ex" {
		t.Fatalf("h1 locks %v, want a1 ex", st.Locks)
	}
}

// An unfinished rejoin that something else completed (lockstart) is
// forgotten: the operator's later lock-stop stays.
func TestRejoinMarkerClearedWhenJoinedOtherwise(t *testing.T) {
	const ioTimeout = 10 * time.Second
	clock := sim.NewManualClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	cfg := rejoinConfig(t)
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol",
		Clock: clock, IOTimeout: ioTimeout, JoinTime: -1})
	ctx := context.Background()
	mustRun(t, c, "h1", "vgchange", "--lock-start", "vol")
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop(), PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	poll := func() sanlock.State { return healthPoll(ctx, d) }
	c.FailLeaseStorage("h1")
	clock.Advance(8 * ioTimeout)
	if st := poll(); st != sanlock.StateAbsent || !recovery.RejoinPending(d.recoveryDeps(), "vol") {
		t.Fatalf("after a rejoin on failing storage: %s, marker %v", st, recovery.RejoinPending(d.recoveryDeps(), "vol"))
	}
	c.RestorePaths("h1")
	mustRun(t, c, "h1", "vgchange", "--lock-start", "vol") // aos-agent lockstart, by hand
	if st := poll(); st != sanlock.StateJoined || recovery.RejoinPending(d.recoveryDeps(), "vol") {
		t.Fatalf("joined by lockstart: %s, marker %v", st, recovery.RejoinPending(d.recoveryDeps(), "vol"))
	}
	mustRun(t, c, "h1", "vgchange", "--lock-stop", "vol")
	clock.Advance(time.Hour)
	if st := poll(); st != sanlock.StateAbsent {
		t.Fatalf("after the operator's lock-stop: %s, want absent", st)
	}
}

// rejoinConfig is h1's agent on VG vol behind map lun0, with its own state
// and runtime dirs and no broker listening.
func rejoinConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.Host, cfg.StateDir, cfg.RuntimeDir = "h1", t.TempDir(), t.TempDir()
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{"vol"}, "lun0"
	cfg.Metrics.Listen = ""
	cfg.TransportURL = "rabbit://guest:guest@127.0.0.1:1/" // nothing listens there
	return cfg
}

// healthPoll runs one health loop iteration and what it started, and
// returns the state a fresh poll sees after it.
func healthPoll(ctx context.Context, d *Daemon) sanlock.State {
	d.health(ctx, d.monitor.Poll(ctx))
	d.auto.wait()
	return d.monitor.Poll(ctx).LockspaceState("vol")
}

// get_status reads the LUN (lvs, vgs): with the map's I/O suspended it
// answers within the probes' bound and names what it could not read,
// instead of waiting for the command timeout (an hour here) twice.
func TestStatusAnswersWhileLUNHangs(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	cfg := rejoinConfig(t)
	cfg.LVM.CommandTimeout = time.Hour
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", Clock: clock, IOTimeout: 10 * time.Second, JoinTime: -1})
	mustRun(t, c, "h1", "vgchange", "--lock-start", "vol")
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	d.monitor.ProbeTimeout = 50 * time.Millisecond
	c.StallIO("h1", time.Hour) // the manual clock never ends it
	res, err := d.status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	errs := res.(map[string]any)["collector_errors"].(map[string]string)
	for _, want := range []string{"vgs", "lvs_vol"} {
		if errs[want] == "" {
			t.Errorf("collector_errors %v: no %s", errs, want)
		}
	}
}
