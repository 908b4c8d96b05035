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
	l.scenario(t, "cow-snapshot-locking", func(t *testing.T) {
		h1, h2 := l.c.Host(1), l.c.Host(2)
		lvc := func(r run.Runner) *lvm.Client {
			return lvm.New(r, lvm.Options{VolumeGroups: []string{vg}, Timeout: 2 * time.Minute})
		}
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
		if err != nil || !strings.Contains(string(res.Stdout), `"cow-snap" successfully removed`) {
			t.Fatalf("lvremove of a snapshot whose origin another host holds: %v %s (lvm2 now guards it?)", err, res.Stdout)
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
}
