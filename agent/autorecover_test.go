package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The day the SAN blips, on the simulator through the daemon's own code: h1
// holds a1 exclusive and a2 shared, loses every path, the kill hook fences
// it; h2 takes a1 meanwhile. While the paths are down the daemon only
// refuses; once they return its health loop recovers the VG by itself, with
// no broker reachable: a2 is re-acquired shared, a1 is reported lost and
// never re-activated here, and mutations are served again.
func TestDaemonRecoversAutomaticallyWhenPathsReturn(t *testing.T) {
	const ioTimeout = 10 * time.Second
	clock := sim.NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir // one place, as the fences these tests run use
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{"vol"}, "lun0"
	cfg.Metrics.Listen = ""
	cfg.TransportURL = "rabbit://guest:guest@127.0.0.1:1/" // nothing listens there
	var c *sim.Cluster
	c = sim.NewCluster(sim.Options{
		Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}}, VG: "vol",
		Clock: clock, IOTimeout: ioTimeout, JoinTime: -1,
		// lvmlockctl running the kill hook (`aos-agent kill-hook vol`) on h1.
		RunKill: func(host string, argv []string) int {
			_, err := recovery.Fence(context.Background(), recovery.Deps{Runner: c.Host(host), StateDir: cfg.StateDir,
				MultipathAlias: "lun0", Log: t.Logf}, argv[len(argv)-1])
			if err != nil {
				t.Errorf("fence: %v", err)
				return 1
			}
			return 0
		},
	})
	c.SetKillCommand("h1", []string{"/usr/local/sbin/aos-agent", "kill-hook"})
	ctx := context.Background()
	for _, h := range []string{"h1", "h2"} {
		mustRun(t, c, h, "vgchange", "--lock-start", "vol")
	}
	mustRun(t, c, "h1", "lvcreate", "-an", "-n", "a1", "-L", "64m", "vol")
	mustRun(t, c, "h1", "lvcreate", "-an", "-n", "a2", "-L", "64m", "vol")

	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop(), PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d.auto == nil {
		t.Fatal("[recovery] mode = auto is the default")
	}
	for lv, mode := range map[string]volumes.RequestedMode{"a1": volumes.Exclusive, "a2": volumes.Shared} {
		if _, err := d.volumes.Activate(ctx, volumes.Ref{VG: "vol", LV: lv}, mode); err != nil {
			t.Fatal(err)
		}
	}
	poll := func() {
		d.health(ctx, d.monitor.Poll(ctx))
		d.auto.wait()
	}
	poll()

	c.FailPaths("h1", true)
	clock.Advance(8 * ioTimeout) // renewal fails: lvmlockctl runs the kill hook
	{
		st := c.State("h1")
		if st.KillRuns != 1 {
			t.Fatalf("h1 not fenced: st.KillRuns = %v, want 1", st.KillRuns)
		}
		if st.Active["a1"] != "error" {
			t.Fatalf("h1 not fenced: st.Active[\"a1\"] = %q, want \"error\"", st.Active["a1"])
		}
		if st.Active["a2"] != "error" {
			t.Fatalf("h1 not fenced: st.Active[\"a2\"] = %q, want \"error\"", st.Active["a2"])
		}
		if st.LockspaceJoined {
			t.Fatal("h1 not fenced: st.LockspaceJoined = true, want false")
		}
	}
	clock.Advance(60 * time.Second) // h1's lease expires (the fence could not release it on disk)
	mustRun(t, c, "h2", "lvchange", "-aey", "vol/a1")
	poll()
	if _, err := d.volumes.Activate(ctx, volumes.Ref{VG: "vol", LV: "a3"}, volumes.Exclusive); !errors.Is(err, errdefs.ErrRecoveryInProgress) {
		t.Fatalf("while fenced: %v", err)
	}
	// extend_volume's refresh fanout reaching the fenced host: refused,
	// a1 stays on the error target while h2 holds it.
	c.RestorePaths("h1")
	if _, err := d.volumes.Refresh(ctx, volumes.Ref{VG: "vol", LV: "a1"}); !errors.Is(err, errdefs.ErrRecoveryInProgress) {
		t.Fatalf("refresh while fenced: %v, want RecoveryInProgress", err)
	}
	if st := c.State("h1"); st.Active["a1"] != "error" {
		t.Fatalf("a1 on h1 is %q after a refresh while h2 holds it", st.Active["a1"])
	}
	c.FailPaths("h1", true)
	if n := testutil.CollectAndCount(d.auto.runs); n != 0 {
		t.Fatalf("recovery attempted with every path down (%v runs)", n)
	}

	// The daemon's own loop does it, with the broker unreachable all along:
	// recovery needs no broker.
	c.RestorePaths("h1")
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	for i := 0; testutil.ToFloat64(d.auto.runs.WithLabelValues("vol", recoveryDone)) == 0; i++ {
		if i == 3000 { // a bound for a hung test, not a timing assertion
			t.Fatal("no automatic recovery within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d.server.Connected() {
		t.Fatal("connected to a broker that does not exist")
	}
	st := c.State("h1")
	if !st.LockspaceJoined {
		t.Fatal("h1 after automatic recovery: st.LockspaceJoined = false, want true")
	}
	if st.Locks["a2"] != "sh" {
		t.Fatalf("h1 after automatic recovery: st.Locks[\"a2\"] = %q, want \"sh\"", st.Locks["a2"])
	}
	if st.Active["a2"] != "linear" {
		t.Fatalf("h1 after automatic recovery: st.Active[\"a2\"] = %q, want \"linear\"", st.Active["a2"])
	}
	if st.Locks["a1"] != "" {
		t.Fatalf("h1 after automatic recovery: st.Locks[\"a1\"] = %q, want \"\"", st.Locks["a1"])
	}
	if st.Active["a1"] == "linear" {
		t.Fatalf("h1 after automatic recovery: st.Active[\"a1\"] = %v, want != \"linear\"", st.Active["a1"])
	}
	if c.State("h2").Locks["a1"] != "ex" {
		t.Fatal("h2 lost a1")
	}
	if err := d.gate(); err != nil {
		t.Fatalf("still gated after recovery: %v", err)
	}
	// Recovery dropped the lost LV from held.json; the daemon's next write
	// must not bring it back (lockstart would re-activate it at boot).
	mustRun(t, c, "h1", "lvcreate", "-an", "-n", "a3", "-L", "64m", "vol")
	if _, err := d.volumes.Activate(ctx, volumes.Ref{VG: "vol", LV: "a3"}, volumes.Exclusive); err != nil {
		t.Fatal(err)
	}
	held, err := state.OpenHeld(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	{
		lvs := held.List()
		if len(lvs) != 2 {
			t.Fatalf("held.json after recovery: len(lvs) = %v, want 2", len(lvs))
		}
		if lvs[0].LV != "a2" {
			t.Fatalf("held.json after recovery: lvs[0].LV = %q, want \"a2\"", lvs[0].LV)
		}
		if lvs[1].LV != "a3" {
			t.Fatalf("held.json after recovery: lvs[1].LV = %q, want \"a3\"", lvs[1].LV)
		}
	}
	poll() // nothing left to do
	if n := testutil.CollectAndCount(d.auto.runs); n != 1 {
		t.Fatalf("%d result series after an idle poll", n)
	}
}

func mustRun(t *testing.T, c *sim.Cluster, host string, argv ...string) {
	t.Helper()
	if _, err := c.Host(host).Run(context.Background(), run.Cmd{Argv: argv}); err != nil {
		t.Fatalf("%s: %v: %v", host, argv, err)
	}
}

// A failed attempt is retried only after a backoff that grows; an
// interrupted fence is left to the operator and never started.
func TestAutoRecoveryBackoffAndOperatorPhases(t *testing.T) {
	dir := t.TempDir()
	calls := 0
	failing := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		calls++
		return run.Result{}, &run.Error{Argv: c.Argv, ExitCode: 1, Stderr: "multipathd: not running"}
	})
	a := newAutoRecovery(recovery.Deps{Runner: failing, StateDir: dir, Log: t.Logf}, zap.NewNop(), prometheus.NewRegistry())
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	ctx := context.Background()
	journal := func(phase recovery.Phase) []*recovery.Journal {
		j := fmt.Sprintf(`{"version":1,"vg":"vol","phase":%q,"queueing_disabled":true,"lvs":[]}`, phase)
		if err := os.WriteFile(recovery.JournalPath(dir, "vol"), []byte(j), 0o600); err != nil {
			t.Fatal(err)
		}
		js, _, err := recovery.ReadJournal(dir, "vol")
		if err != nil {
			t.Fatal(err)
		}
		return []*recovery.Journal{js}
	}
	attempt := func() float64 {
		a.consider(ctx, Snapshot{}, journal(recovery.PhaseFenced))
		a.wait()
		return testutil.ToFloat64(a.runs.WithLabelValues("vol", recoveryFailed))
	}
	{
		n := attempt()
		if n != 1 {
			t.Fatalf("first attempt: n = %v, want 1", n)
		}
		if calls != 1 {
			t.Fatalf("first attempt: calls = %v, want 1", calls)
		}
	}
	if n := attempt(); n != 1 {
		t.Fatal("retried before the backoff")
	}
	now = now.Add(autoRecoverFirstRetry)
	if n := attempt(); n != 2 {
		t.Fatal("not retried after the first backoff")
	}
	now = now.Add(autoRecoverFirstRetry) // the second backoff is twice as long
	if n := attempt(); n != 2 {
		t.Fatal("backoff did not grow")
	}
	now = now.Add(autoRecoverFirstRetry)
	if n := attempt(); n != 3 {
		t.Fatal("not retried after the second backoff")
	}

	calls = 0
	now = now.Add(autoRecoverMaxRetry)
	core, logs := observer.New(zap.ErrorLevel)
	a.log = zap.New(core)
	// A fence still running (it holds the fence lock) is no operator's
	// business yet; one that left "fencing" behind, or failed, is.
	release, err := a.deps.LockFence(ctx, "vol", 0)
	if err != nil {
		t.Fatal(err)
	}
	a.consider(ctx, Snapshot{}, journal(recovery.PhaseFencing))
	if n := logs.FilterMessageSnippet("needs an operator").Len(); n != 0 {
		t.Fatalf("%d operator alarms while the fence runs, want 0", n)
	}
	release()
	for _, phase := range []recovery.Phase{recovery.PhaseFencing, recovery.PhaseFenceFailed} {
		a.consider(ctx, Snapshot{}, journal(phase))
		a.wait()
	}
	if calls != 0 {
		t.Fatalf("%d commands run for a fence that did not finish", calls)
	}
	if n := logs.FilterMessageSnippet("needs an operator").Len(); n != 2 {
		t.Fatalf("%d operator alarms for a dead fence and a failed one, want 2", n)
	}
}

// The watchdog follows the agent's own loop, not the SAN's or the broker's
// health: with the broker, sanlock and the lockspace gone the agent says so
// in STATUS and is still petted (a restart would fix none of it).
func TestWatchdogFollowsTheAgentNotTheSAN(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	messages := func() []string {
		var out []string
		buf := make([]byte, 4096)
		for {
			// Sends are synchronous datagrams: what was sent is queued already.
			_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				return out
			}
			out = append(out, string(buf[:n]))
		}
	}

	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir // one place, as the fences these tests run use
	cfg.LVM.VolumeGroups, cfg.Metrics.Listen, cfg.Recovery.Mode = []string{"vol"}, "", "manual"
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", JoinTime: -1})
	mustRun(t, c, "h1", "vgchange", "--lock-start", "vol")
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	d.health(ctx, d.monitor.Poll(ctx))
	if got := messages(); !slices.Equal(got, []string{"WATCHDOG=1", "STATUS=waiting: message broker disconnected"}) {
		t.Fatalf("before READY: %q", got)
	}
	d.ready.Store(true) // READY was sent (it needs the broker, tested in 30-rpc)
	// A broker outage after READY is reported, and does not stop the pets.
	d.health(ctx, d.monitor.Poll(ctx))
	if got := messages(); !slices.Equal(got, []string{"WATCHDOG=1", "STATUS=degraded: message broker disconnected"}) {
		t.Fatalf("broker down: %q", got)
	}
	c.CrashDaemon("h1", "sanlock") // the lockspace goes with it
	d.health(ctx, d.monitor.Poll(ctx))
	{
		got := messages()
		if len(got) != 2 {
			t.Fatalf("sanlock and lockspace gone: len(got) = %v, want 2", len(got))
		}
		if got[0] != "WATCHDOG=1" {
			t.Fatalf("sanlock and lockspace gone: got[0] = %q, want \"WATCHDOG=1\"", got[0])
		}
		if !strings.HasPrefix(got[1], "STATUS=degraded: lockspace vol") {
			t.Fatalf("sanlock and lockspace gone: got[1] = %q, want it to start with \"STATUS=degraded: lockspace vol\"", got[1])
		}
	}
}
