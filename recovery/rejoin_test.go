package recovery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sim"
)

// Rejoin only starts a lockspace sanlock dropped under lvmlockd: not one an
// operator stopped or lockstart never started, not one fenced (Recover's),
// and not while the lease storage is still gone.
func TestRejoinOnlyTheDroppedLockspace(t *testing.T) {
	ctx := context.Background()
	clk := sim.NewManualClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, IOTimeout: ioTimeout, JoinTime: -1, Clock: clk})
	d := Deps{Runner: c.Host("h1"), StateDir: t.TempDir(), MultipathAlias: "lun0", Log: t.Logf}
	must := func(argv ...string) {
		t.Helper()
		if _, err := c.Host("h1").Run(ctx, run.Cmd{Argv: argv}); err != nil {
			t.Fatal(err)
		}
	}
	rejoin := func(want bool) {
		t.Helper()
		got, err := Rejoin(ctx, d, "vol")
		if err != nil || got != want {
			t.Fatalf("Rejoin = %v, %v; want %v, nil", got, err, want)
		}
	}
	rejoin(false) // never started: lockstart's job
	must("vgchange", "--lock-start", "vol")
	rejoin(false) // joined

	c.FailPaths("h1", true)
	clk.Advance(8 * ioTimeout) // nothing held: sanlock drops the lockspace
	if _, err := Rejoin(ctx, d, "vol"); err == nil || !strings.Contains(err.Error(), ErrPathsDown.Error()) {
		t.Fatalf("paths down: %v, want %v", err, ErrPathsDown)
	}
	c.RestorePaths("h1")
	rejoin(true)
	if !c.State("h1").LockspaceJoined {
		t.Fatal("not joined after Rejoin")
	}
	if RejoinPending(d, "vol") {
		t.Fatal("marker left behind")
	}
	must("vgchange", "--lock-stop", "vol")
	rejoin(false) // an operator's stop stays
}

// The lock start's bound is the operator's [lvm] lock_start_timeout, not
// lvm's default.
func TestRejoinHonoursLockStartTimeout(t *testing.T) {
	ctx := context.Background()
	clk := sim.NewManualClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, IOTimeout: ioTimeout, JoinTime: -1, Clock: clk})
	var bound time.Duration
	r := run.Func(func(ctx context.Context, cmd run.Cmd) (run.Result, error) {
		if strings.Join(cmd.Argv, " ") == "vgchange --lock-start vol" {
			bound = cmd.Timeout
		}
		return c.Host("h1").Run(ctx, cmd)
	})
	if _, err := r.Run(ctx, run.Cmd{Argv: []string{"vgchange", "--lock-start", "vol"}}); err != nil {
		t.Fatal(err)
	}
	c.FailPaths("h1", true)
	clk.Advance(8 * ioTimeout) // nothing held: sanlock drops the lockspace
	c.RestorePaths("h1")
	d := Deps{Runner: r, StateDir: t.TempDir(), MultipathAlias: "lun0", LockStartTimeout: 7 * time.Second, Log: t.Logf}
	if ok, err := Rejoin(ctx, d, "vol"); !ok || err != nil {
		t.Fatalf("Rejoin = %v, %v; want true, nil", ok, err)
	}
	if bound != 7*time.Second {
		t.Fatalf("vgchange --lock-start ran with timeout %v, want the configured 7s", bound)
	}
}
