package volumes

import (
	"context"
	"slices"
	"testing"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/state"
)

// What a crash between an lvchange and its record leaves, and a lock
// released behind the agent's back: ReconcileHeld makes held.json follow
// lvmlockd and reports each difference once.
func TestReconcileHeldOnSim(t *testing.T) {
	ctx := context.Background()
	c, svcs := simServices(t)
	svc := svcs["h1"]
	for _, lv := range []string{"v2", "v3", "v4"} {
		if _, err := svc.Create(ctx, Ref{VG: "vol", LV: lv}, 1); err != nil {
			t.Fatal(err)
		}
	}
	for lv, mode := range map[string]RequestedMode{"v1": Exclusive, "v2": Exclusive, "v3": Shared} {
		if _, err := svc.Activate(ctx, Ref{VG: "vol", LV: lv}, mode); err != nil {
			t.Fatal(err)
		}
	}
	if diffs, err := svc.ReconcileHeld(ctx, "vol"); err != nil || len(diffs) != 0 {
		t.Fatalf("after the agent's own calls: differences %v, err %v; want none", diffs, err)
	}
	lvchange := func(argv ...string) {
		t.Helper()
		if _, err := c.Host("h1").Run(ctx, run.Cmd{Argv: append([]string{"lvchange"}, argv...)}); err != nil {
			t.Fatal(err)
		}
	}
	lvchange("-aey", "vol/v4")                                                                    // locked, the agent crashed before recording it
	lvchange("-an", "vol/v2")                                                                     // released, the record not yet removed
	lvchange("-asy", "vol/v1")                                                                    // converted behind the agent's back
	if err := svc.held.Set(state.HeldLV{VG: "vol", LV: "gone", Mode: state.Shared}); err != nil { // deleted elsewhere
		t.Fatal(err)
	}
	diffs, err := svc.ReconcileHeld(ctx, "vol")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, d.LV+" "+d.Kind)
		if d.At.IsZero() {
			t.Errorf("%s: not settled (At unset)", d)
		}
	}
	slices.Sort(got)
	if want := []string{"gone lock_gone", "v1 mode_differs", "v2 lock_gone", "v4 unrecorded"}; !slices.Equal(got, want) {
		t.Errorf("differences %q, want %q", got, want)
	}
	var held []string
	for _, h := range svc.held.List() {
		held = append(held, h.LV+":"+string(h.Mode))
	}
	slices.Sort(held)
	if want := []string{"v1:sh", "v3:sh", "v4:ex"}; !slices.Equal(held, want) {
		t.Errorf("held.json %q, want %q (lvmlockd's locks)", held, want)
	}
	if diffs, err := svc.ReconcileHeld(ctx, "vol"); err != nil || len(diffs) != 0 {
		t.Errorf("a second run: differences %v, err %v; want none", diffs, err)
	}
}
