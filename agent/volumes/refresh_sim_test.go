package volumes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// h1 held v1 exclusive and was fenced by hand (its table on the error
// target, lockspace killed, locks dropped); h2 then took v1. A refresh
// reaching h1 (extend_volume fans refresh_volume out) must not load v1's
// linear table: lvm2 refreshes without any lock, and h1 would write the
// volume h2 holds. held.json on h1 still lists v1 (no gate here: the
// service alone must refuse).
func TestRefreshAfterFenceLoadsNothing(t *testing.T) {
	ctx := context.Background()
	c, svc := simServices(t)
	v1 := Ref{VG: "vol", LV: "v1"}
	if _, err := svc["h1"].Activate(ctx, v1, Exclusive); err != nil {
		t.Fatal(err)
	}
	h1 := c.Host("h1")
	for _, argv := range [][]string{{"dmsetup", "wipe_table", "vol-v1"}, {"lvmlockctl", "--kill", "vol"}} {
		if _, err := h1.Run(ctx, run.Cmd{Argv: argv}); err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
	}
	if _, err := svc["h1"].Refresh(ctx, v1); !errors.Is(err, errdefs.ErrLockspaceLost) {
		t.Fatalf("refresh with the lockspace killed: got %v, want LockspaceLost", err)
	}
	if _, err := h1.Run(ctx, run.Cmd{Argv: []string{"lvmlockctl", "--drop", "vol"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc["h2"].Activate(ctx, v1, Exclusive); err != nil {
		t.Fatalf("h2 takes v1: %v", err)
	}
	refreshed, err := svc["h1"].Refresh(ctx, v1)
	if refreshed {
		t.Fatal("refresh on the fenced host: refreshed: refreshed = true, want false")
	}
	if !errors.Is(err, errdefs.ErrLockspaceNotStarted) {
		t.Fatalf("refresh on the fenced host: refreshed: err = %v, want errdefs.ErrLockspaceNotStarted", err)
	}
	if got := c.State("h1").Active["v1"]; got != "error" {
		t.Fatalf("h1's v1 table is %q while h2 holds v1, want error", got)
	}
	// Where the lock is held the refresh runs; where the LV is not active
	// there is nothing to do.
	{
		refreshed, err := svc["h2"].Refresh(ctx, v1)
		if err != nil {
			t.Fatalf("refresh on the holder: refreshed: err = %v, want nil", err)
		}
		if !refreshed {
			t.Fatal("refresh on the holder: refreshed: refreshed = false, want true")
		}
	}
	if _, err := svc["h2"].Create(ctx, Ref{VG: "vol", LV: "v2"}, 1); err != nil {
		t.Fatal(err)
	}
	{
		refreshed, err := svc["h2"].Refresh(ctx, Ref{VG: "vol", LV: "v2"})
		if err != nil {
			t.Fatalf("refresh of an inactive LV: refreshed: err = %v, want nil", err)
		}
		if refreshed {
			t.Fatal("refresh of an inactive LV: refreshed: refreshed = true, want false")
		}
	}
}

// A size beyond the VG is LVM's to refuse: InsufficientSpace, nothing
// created (the simulated PV has 8 GiB).
func TestCreateBeyondTheVG(t *testing.T) {
	_, svc := simServices(t)
	ctx := context.Background()
	r := Ref{VG: "vol", LV: "big"}
	if _, err := svc["h1"].Create(ctx, r, 16); !errors.Is(err, errdefs.ErrInsufficientSpace) {
		t.Fatalf("16 GiB in an 8 GiB VG: %v, want InsufficientSpace", err)
	}
	if _, err := svc["h1"].find(ctx, r); !errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("created anyway: %v", err)
	}
}

// gateWiper holds every wipe until release is closed and counts how many
// run at once.
type gateWiper struct {
	mu            sync.Mutex
	running, most int
	release       chan struct{}
}

func (w *gateWiper) Wipe(ctx context.Context, dev, method string, bytes uint64) error {
	w.mu.Lock()
	w.running++
	w.most = max(w.most, w.running)
	w.mu.Unlock()
	<-w.release
	w.mu.Lock()
	w.running--
	w.mu.Unlock()
	return nil
}

// Five deletes with clearing at once: two wipes stream onto the LUN, the
// others wait for a slot (their LVs already locked here), then all finish.
func TestWipesShareTwoCopySlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, svcs := simServices(t)
		h1 := c.Host("h1")
		held, err := state.OpenHeld(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		w := &gateWiper{release: make(chan struct{})}
		svc, err := New(lvm.New(h1, lvm.Options{VolumeGroups: []string{"vol"}}), sanlock.NewLockCtl(h1, time.Second), w, held,
			Options{VolumeGroups: []string{"vol"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		errs := make(chan error, 5)
		for i := range 5 {
			r := Ref{VG: "vol", LV: fmt.Sprintf("w%d", i)}
			if _, err := svcs["h1"].Create(ctx, r, 1); err != nil {
				t.Fatal(err)
			}
			go func() { _, err := svc.Delete(ctx, r, ClearZero, 0); errs <- err }()
		}
		synctest.Wait()
		if w.most != 2 {
			t.Fatalf("wipes at once: got %d, want the 2 copy slots", w.most)
		}
		close(w.release)
		for range 5 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}
