package recovery

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/state"
)

// The lease is lost a second time while a recovery runs: the kill hook
// fences again right after Recover re-acquired the LVs (lease storage gone
// again, paths up). The running Recover must notice the new fence before
// anything irreversible: no refresh of lv1 over the new error table, vm1
// not resumed, the new journal kept. h2 takes lv1 once h1's lease expires;
// h1 must still have it on the error target then. The next Recover, once
// the lease storage is back, settles the second fence.
func TestSimSecondFenceDuringRecovery(t *testing.T) {
	s := newSimCluster(t, true, false)
	s.ok("h1", "lvcreate -an -n lv2 -L 64m vol")
	s.ok("h1", "lvchange -asy vol/lv2")
	held, err := state.OpenHeld(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Set(state.HeldLV{VG: "vol", LV: "lv2", Mode: state.Shared}); err != nil {
		t.Fatal(err)
	}
	s.c.DefineDomain("h1", "vm2", "lv2")
	s.ok("h1", "virsh start vm2")
	s.c.FailPaths("h1", true)
	s.clk.Advance(8 * ioTimeout)
	{
		j := readJournal(t, s.stateDir)
		if j.Phase != PhaseFenced {
			t.Fatalf("first fence: j.Phase = %v, want %v", j.Phase, PhaseFenced)
		}
		if j.Generation != 1 {
			t.Fatalf("first fence: j.Generation = %v, want 1", j.Generation)
		}
	}
	s.c.RestorePaths("h1")

	// h1's runner for Recover: the lease is lost again right after the
	// re-acquisition of lv1, and the kill hook fences before Recover's
	// next step.
	refenced := false
	h1 := s.c.Host("h1")
	r := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		res, err := h1.Run(ctx, c)
		if !refenced && len(c.Argv) > 2 && c.Argv[0] == "lvchange" && c.Argv[1] == "-aey" && slices.Contains(c.Argv, "vol/lv1") {
			refenced = true
			s.c.FailLeaseStorage("h1")
			s.clk.Advance(8 * ioTimeout)
		}
		return res, err
	})
	d := Deps{Runner: r, StateDir: s.stateDir, MultipathAlias: "lun0", Log: t.Logf, LibvirtURI: "qemu:///system", StepTimeout: s.step}
	rep, err := Recover(context.Background(), d, "vol")
	if !refenced {
		t.Fatal("the second fault was never injected")
	}
	if !errors.Is(err, ErrFencedAgain) {
		t.Fatalf("Recover across a second fence: err: err = %v, want ErrFencedAgain", err)
	}
	if rep.Done {
		t.Fatal("Recover across a second fence: err: rep.Done = true, want false")
	}
	st := s.c.State("h1")
	if st.KillRuns != 2 {
		t.Fatalf("h1 after the second fence: st.KillRuns = %v, want 2", st.KillRuns)
	}
	if st.Active["lv1"] != "error" {
		t.Fatalf("h1 after the second fence: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
	}
	if st.Active["lv2"] != "error" {
		t.Fatalf("h1 after the second fence: st.Active[\"lv2\"] = %q, want \"error\"", st.Active["lv2"])
	}
	if len(st.Locks) != 0 {
		t.Fatalf("h1 after the second fence: len(st.Locks) = %v, want 0", len(st.Locks))
	}
	if st.Domains["vm1"] != "paused" {
		t.Fatalf("a VM resumed on a fenced host: st.Domains[\"vm1\"] = %q, want \"paused\"", st.Domains["vm1"])
	}
	if st.Domains["vm2"] != "paused" {
		t.Fatalf("a VM resumed on a fenced host: st.Domains[\"vm2\"] = %q, want \"paused\"", st.Domains["vm2"])
	}
	j := readJournal(t, s.stateDir)
	if j.Generation != 2 {
		t.Fatalf("journal of the second fence: j.Generation = %v, want 2", j.Generation)
	}
	if j.Phase != PhaseFenced {
		t.Fatalf("journal of the second fence: j.Phase = %v, want %v", j.Phase, PhaseFenced)
	}
	if len(j.LVs) != 2 {
		t.Fatalf("journal of the second fence: len(j.LVs) = %v, want 2", len(j.LVs))
	}
	for _, lv := range j.LVs {
		if lv.Mode == "" {
			t.Fatalf("second fence lost track of: lv.Mode = %v, want != \"\"", lv.Mode)
		}
		if lv.Outcome != "" {
			t.Fatalf("second fence lost track of: lv.Outcome = %q, want \"\"", lv.Outcome)
		}
		if !lv.Fenced {
			t.Fatal("second fence lost track of: lv.Fenced = false, want true")
		}
	}

	s.clk.Advance(60e9) // h1's lease expires: h2 may take lv1
	s.ok("h2", "lvchange -aey vol/lv1")
	if st := s.c.State("h1"); st.Active["lv1"] != "error" {
		t.Fatalf("split brain: h1 has lv1 %q while h2 holds it", st.Active["lv1"])
	}

	// Lease storage back: the next run settles the second fence.
	s.c.RestorePaths("h1")
	d.Runner = h1
	rep, err = Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("recover after the second fence: err = %v, want nil", err)
	}
	if !rep.Done {
		t.Fatal("recover after the second fence: rep.Done = false, want true")
	}
	if len(rep.Lost) != 1 {
		t.Fatalf("report: len(rep.Lost) = %v, want 1", len(rep.Lost))
	}
	if rep.Lost[0].LV != "lv1" {
		t.Fatalf("report: rep.Lost[0].LV = %q, want \"lv1\"", rep.Lost[0].LV)
	}
	if len(rep.Reacquired) != 1 {
		t.Fatalf("report: len(rep.Reacquired) = %v, want 1", len(rep.Reacquired))
	}
	if rep.Reacquired[0].LV != "lv2" {
		t.Fatalf("report: rep.Reacquired[0].LV = %q, want \"lv2\"", rep.Reacquired[0].LV)
	}
	st = s.c.State("h1")
	if st.Domains["vm1"] != "paused" {
		t.Fatalf("h1 after the final recovery: st.Domains[\"vm1\"] = %q, want \"paused\"", st.Domains["vm1"])
	}
	if st.Domains["vm2"] != "running" {
		t.Fatalf("h1 after the final recovery: st.Domains[\"vm2\"] = %q, want \"running\"", st.Domains["vm2"])
	}
	if st.Active["lv1"] != "error" {
		t.Fatalf("h1 after the final recovery: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
	}
	if st.Active["lv2"] != "linear" {
		t.Fatalf("h1 after the final recovery: st.Active[\"lv2\"] = %q, want \"linear\"", st.Active["lv2"])
	}
}
