package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/sim"
)

// The production clients run unchanged on the simulator: their argv, parsers
// and error classification meet the simulated tools.

func newSim(t *testing.T) (*sim.Cluster, *sim.ManualClock) {
	t.Helper()
	clk := sim.NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}},
		IOTimeout: 10 * time.Second, JoinTime: -1, Clock: clk})
	return c, clk
}

func TestProductionLVMClientOnSim(t *testing.T) {
	ctx := context.Background()
	c, _ := newSim(t)
	opts := lvm.Options{VolumeGroups: []string{"vol"}}
	h1, h2 := lvm.New(c.Host("h1"), opts), lvm.New(c.Host("h2"), opts)
	for _, cl := range []*lvm.Client{h1, h2} {
		if err := cl.LockStart(ctx, "vol"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"volume-a", "volume-b"} {
		if err := h1.Create(ctx, "vol", name, 64<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := h1.Create(ctx, "vol", "volume-a", 64<<20); !errors.Is(err, errdefs.ErrVolumeExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := h1.Activate(ctx, lvm.Exclusive, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	res, err := h2.Activate(ctx, lvm.Exclusive, "vol", "volume-a", "volume-b")
	if !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("batch with one conflict: err = %v, want errdefs.ErrLockConflict", err)
	}
	if len(res.Changed) != 1 {
		t.Fatalf("batch with one conflict: len(res.Changed) = %v, want 1", len(res.Changed))
	}
	if res.Changed[0] != "volume-b" {
		t.Fatalf("batch with one conflict: res.Changed[0] = %q, want \"volume-b\"", res.Changed[0])
	}
	lv, err := h1.LV(ctx, "vol", "volume-a")
	if err != nil {
		t.Fatalf("LV: err = %v, want nil", err)
	}
	if lv.Size != 64<<20 {
		t.Fatalf("LV: lv.Size = %v, want %v", lv.Size, 64<<20)
	}
	if !lv.ActiveLocally {
		t.Fatal("LV: lv.ActiveLocally = false, want true")
	}
	if lv.LockArgs != "1.0.0:70254592" {
		t.Fatalf("LV: lv.LockArgs = %q, want \"1.0.0:70254592\"", lv.LockArgs)
	}
	if _, err := h1.LV(ctx, "vol", "volume-zzz"); !errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("missing LV: %v", err)
	}
	vgs, err := h1.VGs(ctx, "vol")
	if err != nil {
		t.Fatalf("VGs: err = %v, want nil", err)
	}
	if len(vgs) != 1 {
		t.Fatalf("VGs: len(vgs) = %v, want 1", len(vgs))
	}
	// extend while shared on both hosts, then refresh the other one
	if _, err := h1.Activate(ctx, lvm.Shared, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Deactivate(ctx, "vol", "volume-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Activate(ctx, lvm.Shared, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	if err := h1.Extend(ctx, "vol", "volume-a", 128<<20, true); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Refresh(ctx, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	if err := h1.Remove(ctx, "vol", "volume-a"); !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("remove while held elsewhere: %v", err)
	}
	if err := h1.LockStop(ctx, "vol"); err == nil {
		t.Fatal("lock stop with active LVs must fail")
	}
	for _, cl := range []*lvm.Client{h1, h2} {
		if _, err := cl.Deactivate(ctx, "vol", "volume-a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h1.Remove(ctx, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	if err := h2.LockStop(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Activate(ctx, lvm.Exclusive, "vol", "volume-b"); !errors.Is(err, errdefs.ErrLockspaceNotStarted) {
		t.Fatalf("without lockspace: %v", err)
	}
}

func TestProductionLeaseFailureViewsOnSim(t *testing.T) {
	ctx := context.Background()
	c, clk := newSim(t)
	h1 := c.Host("h1")
	l := lvm.New(h1, lvm.Options{VolumeGroups: []string{"vol"}})
	if err := l.LockStart(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	if err := l.Create(ctx, "vol", "volume-a", 8<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Activate(ctx, lvm.Exclusive, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	mp := multipath.New(h1, time.Second)
	c.FailPaths("h1", true)
	if err := mp.DisableQueueing(ctx, "lun0"); err != nil {
		t.Fatal(err)
	}
	paths, err := mp.Paths(ctx)
	if err != nil {
		t.Fatalf("paths: err = %v, want nil", err)
	}
	if len(paths) != 2 {
		t.Fatalf("paths: len(paths) = %v, want 2", len(paths))
	}
	if paths[0].CheckerState != "faulty" {
		t.Fatalf("paths: paths[0].CheckerState = %q, want \"faulty\"", paths[0].CheckerState)
	}
	if paths[1].Map != "lun0" {
		t.Fatalf("paths: paths[1].Map = %q, want \"lun0\"", paths[1].Map)
	}
	m, err := mp.Map(ctx, "lun0")
	if err != nil {
		t.Fatalf("map: err = %v, want nil", err)
	}
	if m.ActivePathCount != 0 {
		t.Fatalf("map: m.ActivePathCount = %v, want 0", m.ActivePathCount)
	}
	if _, err := mp.Map(ctx, "nope"); !errors.Is(err, multipath.ErrMapNotFound) {
		t.Fatalf("missing map: %v", err)
	}
	clk.Advance(80 * time.Second)

	st, err := sanlock.New(h1, time.Second).Status(ctx)
	if err != nil {
		t.Fatalf("status: err = %v, want nil", err)
	}
	if len(st.Lockspaces) != 1 {
		t.Fatalf("status: len(st.Lockspaces) = %v, want 1", len(st.Lockspaces))
	}
	if st.Lockspaces[0].Fields.Int("space_dead") != 1 {
		t.Fatalf("status: st.Lockspaces[0].Fields.Int(\"space_dead\") = %v, want 1", st.Lockspaces[0].Fields.Int("space_dead"))
	}
	if len(st.Resources) != 1 {
		t.Fatalf("status: len(st.Resources) = %v, want 1", len(st.Resources))
	}
	hs, err := sanlock.New(h1, time.Second).HostStatus(ctx, "lvm_vol")
	if err != nil {
		t.Fatalf("host_status: err = %v, want nil", err)
	}
	if len(hs.Hosts) != 1 {
		t.Fatalf("host_status: len(hs.Hosts) = %v, want 1", len(hs.Hosts))
	}
	ctl := sanlock.NewLockCtl(h1, time.Second)
	dump, err := ctl.Dump(ctx)
	if err != nil {
		t.Fatalf("dump: err = %v, want nil", err)
	}
	if len(dump.Lockspaces) != 1 {
		t.Fatalf("dump: len(dump.Lockspaces) = %v, want 1", len(dump.Lockspaces))
	}
	if !dump.Lockspaces[0].KillVG() {
		t.Fatal("dump: dump.Lockspaces[0].KillVG() = false, want true")
	}
	if _, err := l.Activate(ctx, lvm.Exclusive, "vol", "volume-a"); !errors.Is(err, errdefs.ErrLockspaceLost) {
		t.Fatalf("activate after kill: %v", err)
	}
	c.RestorePaths("h1")
	if _, err := l.Deactivate(ctx, "vol", "volume-a"); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Drop(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	if err := l.LockStart(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	info, err := ctl.Info(ctx)
	if err != nil {
		t.Fatalf("info: err = %v, want nil", err)
	}
	if len(info.VGs) != 1 {
		t.Fatalf("info: len(info.VGs) = %v, want 1", len(info.VGs))
	}
	if info.VGs[0].Lockspace != "lvm_vol" {
		t.Fatalf("info: info.VGs[0].Lockspace = %q, want \"lvm_vol\"", info.VGs[0].Lockspace)
	}
	if st := c.State("h1"); st.Resets != 0 {
		t.Fatalf("%+v", st)
	}
}
