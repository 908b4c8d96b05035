//go:build lab

package lab

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// cowSnapshots pins down what real lvm2 + lvmlockd do with thick COW
// snapshots in a sanlock VG, which is why the agent offers no snapshot
// methods and its delete_volume refuses origins and snapshots
// (docs/rpc.md): lvmlockd takes the origin's lock for lvcreate -s, but not
// for removing a snapshot, so a host can free the COW space of a snapshot
// that another host still writes through.
func (l *labT) cowSnapshots(t *testing.T, ctx context.Context) {
	h1, h2 := l.c.Host(1), l.c.Host(2)
	lvc := func(r run.Runner) *lvm.Client {
		return lvm.New(r, lvm.Options{VolumeGroups: []string{vg}, Timeout: 2 * time.Minute})
	}
	l.scenario(t, "cow-snapshot-locking", func(t *testing.T) {
		lvcreateS := func(r run.Runner, snap, origin string) error {
			argv := []string{"lvcreate", "-s", "-n", snap, "-L", "32m", vg + "/" + origin}
			_, err := r.Run(ctx, run.Cmd{Argv: argv, Timeout: 2 * time.Minute})
			return lvm.Classify(argv, err)
		}
		for _, name := range []string{"cow-origin", "cow-shared"} {
			if err := lvc(h1).Create(ctx, vg, name, 64<<20); err != nil {
				t.Fatal(err)
			}
		}
		// Origin exclusive on h1: h1 may snapshot it, h2 is refused.
		if _, err := lvc(h1).Activate(ctx, lvm.Exclusive, vg, "cow-origin"); err != nil {
			t.Fatal(err)
		}
		if err := lvcreateS(h1, "cow-snap", "cow-origin"); err != nil {
			t.Fatalf("snapshot of an origin held exclusive here: %v", err)
		}
		if err := lvcreateS(h2, "cow-snap2", "cow-origin"); !errors.Is(err, errdefs.ErrLockConflict) {
			t.Fatalf("snapshot of an origin held by the other host: %v", err)
		}
		// Origin shared here: refused, the snapshot needs it exclusive.
		if _, err := lvc(h1).Activate(ctx, lvm.Shared, vg, "cow-shared"); err != nil {
			t.Fatal(err)
		}
		if err := lvcreateS(h1, "cow-snap3", "cow-shared"); !errors.Is(err, errdefs.ErrIncompatibleLockMode) {
			t.Fatalf("snapshot of an origin held shared: %v", err)
		}
		// The gap: with origin and snapshot active on h1, h2 removes the
		// snapshot and lvmlockd lets it. If a later lvm2 refuses, this
		// fails and docs/rpc.md can be revisited.
		res, err := h2.Run(ctx, run.Cmd{Argv: []string{"lvremove", "-y", vg + "/cow-snap"}, Timeout: 2 * time.Minute})
		if err != nil {
			t.Fatalf("lvremove of a snapshot whose origin another host holds: err = %v, want nil", err)
		}
		if !strings.Contains(string(res.Stdout), `"cow-snap" successfully removed`) {
			t.Fatalf("lvremove of a snapshot whose origin another host holds: string(res.Stdout) = %q, want it to contain `\"cow-snap\" successfully removed`", string(res.Stdout))
		}
		info, err := sanlock.NewLockCtl(h1, time.Minute).Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("h1 still holds its locks after h2 removed the snapshot: %+v", info)

		// delete_volume through the agent's service refuses an origin with
		// snapshots (lvremove would take them along).
		if err := lvcreateS(h1, "cow-snap4", "cow-origin"); err != nil {
			t.Fatal(err)
		}
		if _, err := lvc(h1).Deactivate(ctx, vg, "cow-origin", "cow-shared"); err != nil {
			t.Fatal(err)
		}
		held, err := state.OpenHeld(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		svc, err := volumes.New(lvc(h2), sanlock.NewLockCtl(h2, time.Minute), volumes.CommandWiper{Runner: h2}, held,
			volumes.Options{VolumeGroups: []string{vg}})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"cow-origin", "cow-snap4"} {
			if _, err := svc.Delete(ctx, volumes.Ref{VG: vg, LV: name}, volumes.ClearNone, 0); !errors.Is(err, errdefs.ErrVolumeInUse) {
				t.Fatalf("delete_volume %s: %v", name, err)
			}
		}
		l.must(t, 1, "", "lvremove", "-y", vg+"/cow-origin", vg+"/cow-shared")
	})

	// The agent's snapshot methods on real lvm2: every step with the origin
	// exclusive on the acting host, refusals where lvm2 alone would not
	// refuse, and a clone whose data is the snapshot's.
	l.scenario(t, "snapshot-methods", func(t *testing.T) {
		svc := map[int]*volumes.Service{}
		for h := 1; h <= 2; h++ {
			held, err := state.OpenHeld(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			r := l.c.Host(h)
			if svc[h], err = volumes.New(lvc(r), sanlock.NewLockCtl(r, time.Minute), volumes.CommandWiper{Runner: r}, held,
				volumes.Options{VolumeGroups: []string{vg}}); err != nil {
				t.Fatal(err)
			}
		}
		origin, snap, clone := volumes.Ref{VG: vg, LV: "svc-origin"}, volumes.Ref{VG: vg, LV: "_snapshot-svc"}, volumes.Ref{VG: vg, LV: "svc-clone"}
		// 2 GiB with 1 GiB of COW space: the clone must have the origin's size.
		if _, err := svc[1].Create(ctx, origin, 2); err != nil {
			t.Fatal(err)
		}
		// A marker in the origin's first sector, written before the snapshot.
		marker := "aos-agent snapshot marker"
		l.must(t, 1, "", "lvchange", "-aey", vg+"/"+origin.LV)
		if _, err := h1.Run(ctx, run.Cmd{Argv: []string{"dd", "of=/dev/" + vg + "/" + origin.LV, "bs=512", "count=1", "conv=sync", "oflag=direct", "status=none"},
			Stdin: []byte(marker), Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		l.must(t, 1, "", "lvchange", "-an", vg+"/"+origin.LV)
		start := time.Now()
		if _, err := svc[2].CreateSnapshot(ctx, snap, origin.LV, 1); err != nil {
			t.Fatalf("create_snapshot of an idle origin from h2: %v", err)
		}
		l.tm.add("create_snapshot (idle origin)", time.Since(start))
		l.wantMode(t, 2, origin.LV, "")
		if _, err := svc[1].Activate(ctx, origin, volumes.Exclusive); err != nil {
			t.Fatal(err)
		}
		// The origin's VM overwrites the marker: the snapshot keeps the old one.
		if _, err := h1.Run(ctx, run.Cmd{Argv: []string{"dd", "of=/dev/" + vg + "/" + origin.LV, "bs=512", "count=1", "conv=sync", "oflag=direct", "status=none"},
			Stdin: []byte("written after the snapshot"), Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			err  error
			want error
		}{
			{"create_snapshot on h2 while h1 holds the origin", second(svc[2].CreateSnapshot(ctx, volumes.Ref{VG: vg, LV: "_snapshot-svc2"}, origin.LV, 1)), errdefs.ErrLockConflict},
			{"delete_snapshot on h2 while h1 holds the origin", second(svc[2].DeleteSnapshot(ctx, snap)), errdefs.ErrLockConflict},
			{"shared attach of the origin on h2", second(svc[2].Activate(ctx, origin, volumes.Shared)), errdefs.ErrIncompatibleLockMode},
		} {
			if !errors.Is(c.err, c.want) {
				t.Fatalf("%s: %v, want %v", c.name, c.err, c.want)
			}
			t.Logf("%s: %v", c.name, c.err)
		}
		start = time.Now()
		{
			v, err := svc[1].Clone(ctx, clone, snap.LV, 0)
			if err != nil {
				t.Fatalf("clone_volume from the snapshot on h1: err = %v, want nil", err)
			}
			if v.SizeBytes != 2<<30 {
				t.Fatalf("clone_volume from the snapshot on h1: v.SizeBytes = %v, want %v", v.SizeBytes, 2<<30)
			}
		}
		l.tm.add("clone_volume of a 2 GiB snapshot (dd)", time.Since(start))
		if _, err := svc[2].Activate(ctx, clone, volumes.Shared); err != nil {
			t.Fatal(err)
		}
		res := l.must(t, 2, "", "dd", "if=/dev/"+vg+"/"+clone.LV, "bs=512", "count=1", "iflag=direct", "status=none")
		if !strings.HasPrefix(string(res.Stdout), marker) {
			t.Fatalf("the clone's first sector starts %q, want the snapshot's %q", res.Stdout[:min(len(res.Stdout), 32)], marker)
		}
		if err := svc[2].Deactivate(ctx, clone); err != nil {
			t.Fatal(err)
		}
		{
			ok, err := svc[1].DeleteSnapshot(ctx, snap)
			if !ok {
				t.Fatal("delete_snapshot on the origin's host: ok = false, want true")
			}
			if err != nil {
				t.Fatalf("delete_snapshot on the origin's host: err = %v, want nil", err)
			}
		}
		l.wantMode(t, 1, origin.LV, "ex")
		if err := svc[1].Deactivate(ctx, origin); err != nil {
			t.Fatal(err)
		}
		for _, r := range []volumes.Ref{clone, origin} {
			if _, err := svc[2].Delete(ctx, r, volumes.ClearNone, 0); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func second[T any](_ T, err error) error { return err }
