//go:build realsanlock

// Runs the package against the real sanlock 3.8.5 and lvmlockctl binaries
// (scripts/test.d/35-hostcli.sh): a private sanlock daemon
// (SANLOCK_RUN_DIR, SANLOCK_PRIVILEGED=0, no watchdog) with a file-backed
// lockspace, one exclusive and one shared lease held by child processes.
package sanlock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// privateDaemon starts a sanlock daemon of this test's own and returns a
// runner whose commands talk to it, a Client on that runner, an empty 4 MiB
// lease file, and a function running a command that must succeed.
func privateDaemon(t *testing.T) (*run.Local, *Client, string, func(argv ...string)) {
	t.Helper()
	if _, err := exec.LookPath("sanlock"); err != nil {
		t.Fatal("sanlock not installed (scripts/deps.d/hostcli.pkgs):", err)
	}
	runDir := t.TempDir()
	// Leases need O_DIRECT, which tmpfs lacks: keep them on /var/tmp.
	leaseDir, err := os.MkdirTemp("/var/tmp", "aos-sanlock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(leaseDir) })
	env := []string{"SANLOCK_RUN_DIR=" + runDir, "SANLOCK_PRIVILEGED=0"}
	host := &run.Local{Env: env, DefaultTimeout: time.Minute}
	ctx := context.Background()
	sh := func(argv ...string) {
		t.Helper()
		if res, err := host.Run(ctx, run.Cmd{Argv: argv}); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, res.Stdout)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command("sanlock", "daemon", "-D", "-w", "0", "-U", u.Username, "-G", g.Name)
	daemon.Env = append(os.Environ(), env...)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- daemon.Wait() }()
	t.Cleanup(func() {
		// sanlock ignores SIGTERM while a lockspace exists: force it.
		_, _ = host.Run(ctx, run.Cmd{Argv: []string{"sanlock", "client", "shutdown", "-f", "1"}})
		select {
		case <-daemonDone:
		case <-time.After(10 * time.Second):
			_ = daemon.Process.Kill()
		}
	})
	c := New(host, 30*time.Second)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := c.Status(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal("daemon never answered:", err)
		}
	}
	leases := filepath.Join(leaseDir, "leases")
	if err := os.WriteFile(leases, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	return host, c, leases, sh
}

// holdLease runs `sanlock client command -r RES -c argv...` until the test ends.
func holdLease(t *testing.T, host *run.Local, res string, argv ...string) {
	holder := exec.Command("sanlock", append([]string{"client", "command", "-r", res, "-c"}, argv...)...)
	holder.Env = append(os.Environ(), host.Env...)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
}

func TestRealSanlockDaemon(t *testing.T) {
	host, c, leases, sh := privateDaemon(t)
	ctx := context.Background()
	sh("sanlock", "direct", "init", "-s", "lvm_t:0:"+leases+":0")
	sh("sanlock", "direct", "init", "-r", "lvm_t:EXLV:"+leases+":1048576")
	sh("sanlock", "direct", "init", "-r", "lvm_t:SHLV:"+leases+":2097152")
	sh("sanlock", "client", "add_lockspace", "-s", "lvm_t:1:"+leases+":0", "-o", "1")
	holdLease(t, host, "lvm_t:EXLV:"+leases+":1048576", "/bin/sleep", "600")
	holdLease(t, host, "lvm_t:SHLV:"+leases+":2097152:SH", "/bin/sleep", "600")

	var st *Status
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st, err = c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if len(st.Resources) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases never held: %+v", st)
		}
	}
	ls := st.Lockspace("lvm_t")
	if ls == nil {
		t.Fatal("status: ls = nil, want non-nil")
	}
	if ls.IOTimeout() != 1 {
		t.Fatalf("status: ls.IOTimeout() = %v, want 1", ls.IOTimeout())
	}
	if st.Daemon.Uint("monotime") == 0 {
		t.Fatalf("status: st.Daemon.Uint(\"monotime\") = %v, want != 0", st.Daemon.Uint("monotime"))
	}
	l := Health(st, nil, nil)["t"]
	if l.State() != StateJoined {
		t.Fatalf("health: l.State() = %v, want %v", l.State(), StateJoined)
	}
	if l.Locks["EXLV"] != ModeEx {
		t.Fatalf("health: l.Locks[\"EXLV\"] = %v, want %v", l.Locks["EXLV"], ModeEx)
	}
	if l.Locks["SHLV"] != ModeSh {
		t.Fatalf("health: l.Locks[\"SHLV\"] = %v, want %v", l.Locks["SHLV"], ModeSh)
	}
	if l.HostID != 1 {
		t.Fatalf("health: l.HostID = %v, want 1", l.HostID)
	}

	// Right after add_lockspace sanlock answers "hosts not ready" until it
	// has read the host leases.
	var gs []GetsLockspace
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if gs, err = c.Gets(ctx); err != nil || len(gs) != 1 || gs[0].HostsError == "" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("gets: err = %v, want nil", err)
	}
	if len(gs) != 1 {
		t.Fatalf("gets: len(gs) = %v, want 1", len(gs))
	}
	if gs[0].Name != "lvm_t" {
		t.Fatalf("gets: gs[0].Name = %q, want \"lvm_t\"", gs[0].Name)
	}
	if len(gs[0].Hosts) != 1 {
		t.Fatalf("gets: len(gs[0].Hosts) = %v, want 1", len(gs[0].Hosts))
	}
	if gs[0].Hosts[0].State != HostLive {
		t.Fatalf("gets: gs[0].Hosts[0].State = %v, want %v", gs[0].Hosts[0].State, HostLive)
	}
	hs, err := c.HostStatus(ctx, "lvm_t")
	if err != nil {
		t.Fatalf("host_status: err = %v, want nil", err)
	}
	if hs.Lockspace != "lvm_t" {
		t.Fatalf("host_status: hs.Lockspace = %q, want \"lvm_t\"", hs.Lockspace)
	}
	if len(hs.Hosts) != 1 {
		t.Fatalf("host_status: len(hs.Hosts) = %v, want 1", len(hs.Hosts))
	}
	if hs.Hosts[0].Fields.Int("io_timeout") != 1 {
		t.Fatalf("host_status: hs.Hosts[0].Fields.Int(\"io_timeout\") = %v, want 1", hs.Hosts[0].Fields.Int("io_timeout"))
	}
	rs, err := c.Renewal(ctx, "lvm_t")
	if err != nil {
		t.Fatalf("renewal: err = %v, want nil", err)
	}
	if len(rs) == 0 {
		t.Fatalf("renewal: len(rs) = %v, want != 0", len(rs))
	}
	if _, err := c.HostStatus(ctx, "lvm_nope"); !errors.Is(err, errdefs.ErrLockspaceNotStarted) {
		t.Fatalf("unknown lockspace: %v", err)
	}
	if _, err := c.Renewal(ctx, "lvm_nope"); !errors.Is(err, errdefs.ErrLockspaceNotStarted) {
		t.Fatalf("unknown lockspace: %v", err)
	}

	// A client pointed at a run directory with no daemon.
	down := New(&run.Local{Env: []string{"SANLOCK_RUN_DIR=" + t.TempDir(), "SANLOCK_PRIVILEGED=0"}}, 30*time.Second)
	if _, err := down.Status(ctx); !errors.Is(err, errdefs.ErrLockManagerDown) {
		t.Fatalf("status, no daemon: %v", err)
	}
	if _, err := down.Gets(ctx); !errors.Is(err, errdefs.ErrLockManagerDown) {
		t.Fatalf("gets, no daemon: %v", err)
	}
	if _, err := down.HostStatus(ctx, "lvm_t"); !errors.Is(err, errdefs.ErrLockManagerDown) {
		t.Fatalf("host_status, no daemon: %v", err)
	}
}

// Truncating the lease file under a held lease makes every renewal fail;
// at 8×io_timeout sanlock sets space_dead and the model must say failed.
// The holder ignores SIGTERM, as lvmlockd does, so the lockspace stays.
func TestRealSanlockLeaseFailure(t *testing.T) {
	host, c, leases, sh := privateDaemon(t)
	ctx := context.Background()
	sh("sanlock", "direct", "init", "-s", "lvm_f:0:"+leases+":0")
	sh("sanlock", "direct", "init", "-r", "lvm_f:EXLV:"+leases+":1048576")
	sh("sanlock", "client", "add_lockspace", "-s", "lvm_f:1:"+leases+":0", "-o", "1")
	holdLease(t, host, "lvm_f:EXLV:"+leases+":1048576", "/bin/sh", "-c", `trap "" TERM; while :; do sleep 1; done`)
	var l *Lockspace
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l = Health(st, nil, nil)["f"]; l != nil && l.Locks["EXLV"] == ModeEx {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease never held: %+v", st)
		}
	}
	if l.State() != StateJoined {
		t.Fatalf("before the fault: %s %+v", l.State(), l)
	}
	if err := os.Truncate(leases, 0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l = Health(st, nil, nil)["f"]; l != nil && l.SpaceDead {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("space_dead never set: %+v", st)
		}
	}
	// No bound on RenewalAge: a truncated lease file can fail renewal at
	// once (renewal_last_result -223) rather than after 8 × io_timeout.
	if l.State() != StateFailed {
		t.Fatalf("after the fault: l.State() = %v, want %v", l.State(), StateFailed)
	}
	if !l.RenewFail {
		t.Fatal("after the fault: l.RenewFail = false, want true")
	}
	if l.RenewalLastResult >= 0 {
		t.Fatalf("after the fault: l.RenewalLastResult = %v, want < 0", l.RenewalLastResult)
	}
}

// No lvmlockd runs on the test host: lvmlockctl must say so and the error
// must be ErrLockManagerDown.
func TestRealLvmlockctlWithoutDaemon(t *testing.T) {
	if _, err := exec.LookPath("lvmlockctl"); err != nil {
		t.Fatal("lvmlockctl not installed (scripts/deps.d/hostcli.pkgs):", err)
	}
	if _, err := os.Stat("/run/lvm/lvmlockd.socket"); err == nil {
		t.Fatal("an lvmlockd is running on this host; this test needs none")
	}
	l := NewLockCtl(&run.Local{}, 30*time.Second)
	if _, err := l.Info(context.Background()); !errors.Is(err, errdefs.ErrLockManagerDown) {
		t.Fatalf("info: %v", err)
	}
	if _, err := l.Dump(context.Background()); !errors.Is(err, errdefs.ErrLockManagerDown) {
		t.Fatalf("dump: %v", err)
	}
}
