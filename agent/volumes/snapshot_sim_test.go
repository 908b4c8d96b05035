package volumes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
)

// simServices starts two simulated hosts sharing the VG, each with its own
// service, and creates v1 (1 GiB) from h1.
func simServices(t *testing.T) (*sim.Cluster, map[string]*Service) {
	t.Helper()
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}}, JoinTime: -1, PVSize: 8 << 30})
	svcs := map[string]*Service{}
	for _, h := range []string{"h1", "h2"} {
		r := c.Host(h)
		if _, err := r.Run(context.Background(), run.Cmd{Argv: []string{"vgchange", "--lock-start", "vol"}}); err != nil {
			t.Fatal(err)
		}
		held, err := state.OpenHeld(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(lvm.New(r, lvm.Options{VolumeGroups: []string{"vol"}}), sanlock.NewLockCtl(r, time.Second),
			CommandWiper{Runner: r}, held, Options{VolumeGroups: []string{"vol"}})
		if err != nil {
			t.Fatal(err)
		}
		svcs[h] = svc
	}
	if _, err := svcs["h1"].Create(context.Background(), Ref{VG: "vol", LV: "v1"}, 2); err != nil {
		t.Fatal(err)
	}
	return c, svcs
}

// The snapshot story across two simulated hosts: the origin attached on h1
// keeps every snapshot operation on h1; the other host is refused where raw
// lvm2 would let it free COW space h1 writes through.
func TestSnapshotStoryOnSim(t *testing.T) {
	ctx := context.Background()
	c, svc := simServices(t)
	v1, s1, c1 := Ref{VG: "vol", LV: "v1"}, Ref{VG: "vol", LV: "s1"}, Ref{VG: "vol", LV: "c1"}

	// Inactive origin: the snapshot is made from the cinder host, nothing stays locked.
	if _, err := svc["h2"].CreateSnapshot(ctx, s1, "v1", 1); err != nil {
		t.Fatal(err)
	}
	{
		st := c.State("h2")
		if len(st.Locks) != 0 {
			t.Fatalf("h2 keeps something: len(st.Locks) = %v, want 0", len(st.Locks))
		}
		if len(st.Active) != 0 {
			t.Fatalf("h2 keeps something: len(st.Active) = %v, want 0", len(st.Active))
		}
	}
	// Attached on h1: multi-attach is refused up front, snapshots from h2 too.
	if _, err := svc["h1"].Activate(ctx, v1, Exclusive); err != nil {
		t.Fatal(err)
	}
	if st := c.State("h1"); st.Active["s1"] == "" {
		t.Fatalf("the snapshot is not active with its origin: %+v", st)
	}
	if _, err := svc["h2"].Activate(ctx, v1, Shared); !errors.Is(err, errdefs.ErrIncompatibleLockMode) {
		t.Fatalf("shared attach of an origin: %v", err)
	}
	if _, err := svc["h2"].CreateSnapshot(ctx, Ref{VG: "vol", LV: "s2"}, "v1", 1); !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("snapshot of an origin attached elsewhere: %v", err)
	}
	if _, err := svc["h2"].DeleteSnapshot(ctx, s1); !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("delete of a snapshot whose origin is attached elsewhere: %v", err)
	}
	// h1 clones the snapshot (1 GiB of COW space for a 2 GiB origin: the
	// clone has the origin's size) while its VM writes the origin.
	{
		v, err := svc["h1"].Clone(ctx, c1, "s1", 0)
		if err != nil {
			t.Fatalf("clone: err = %v, want nil", err)
		}
		if v.SizeBytes != 2<<30 {
			t.Fatalf("clone: v.SizeBytes = %v, want %v", v.SizeBytes, 2<<30)
		}
	}
	st := c.State("h1")
	if st.Locks["v1"] != "ex" {
		t.Fatalf("after the clone h1 must hold v1 only: st.Locks[\"v1\"] = %q, want \"ex\"", st.Locks["v1"])
	}
	if st.Active["c1"] != "" {
		t.Fatalf("after the clone h1 must hold v1 only: st.Active[\"c1\"] = %q, want \"\"", st.Active["c1"])
	}
	if st.Locks["c1"] != "" {
		t.Fatalf("after the clone h1 must hold v1 only: st.Locks[\"c1\"] = %q, want \"\"", st.Locks["c1"])
	}
	{
		ok, err := svc["h1"].DeleteSnapshot(ctx, s1)
		if !ok {
			t.Fatal("delete on the origin's host: ok = false, want true")
		}
		if err != nil {
			t.Fatalf("delete on the origin's host: err = %v, want nil", err)
		}
	}
	{
		st := c.State("h1")
		if st.Locks["v1"] != "ex" {
			t.Fatalf("the origin's lock must stay: st.Locks[\"v1\"] = %q, want \"ex\"", st.Locks["v1"])
		}
		if st.Active["s1"] != "" {
			t.Fatalf("the origin's lock must stay: st.Active[\"s1\"] = %q, want \"\"", st.Active["s1"])
		}
	}
	// Detached: the clone is an ordinary volume, shareable.
	if err := svc["h1"].Deactivate(ctx, v1); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		if _, err := svc[h].Activate(ctx, c1, Shared); err != nil {
			t.Fatalf("%s: shared attach of the clone: %v", h, err)
		}
	}
	vols, err := svc["h1"].List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vols {
		names = append(names, v.LV)
	}
	if strings.Join(names, ",") != "c1,v1" {
		t.Fatalf("volumes %v", names)
	}
}
