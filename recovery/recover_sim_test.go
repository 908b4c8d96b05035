package recovery

import (
	"context"
	"errors"
	"testing"

	"github.com/aos-agent/aos-agent/state"
)

// End to end on the simulator: h1 holds lv1 ex and lv2 sh, loses its lease
// and is fenced by the kill hook; h2 takes lv1 meanwhile. Once h1's paths are
// back, Recover re-acquires lv2 shared, reports lv1 lost without activating
// it (its paused VM keeps the error-tabled device), removes the journal and leaves held.json equal to lvmlockd's view.
func TestSimRecoverAfterFence(t *testing.T) {
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
	d := Deps{Runner: s.c.Host("h1"), StateDir: s.stateDir, MultipathAlias: "lun0", Log: t.Logf}

	s.c.FailPaths("h1", true)
	s.clk.Advance(8 * ioTimeout)
	{
		st := s.c.State("h1")
		if st.KillRuns != 1 {
			t.Fatalf("not fenced: st.KillRuns = %v, want 1", st.KillRuns)
		}
		if st.Active["lv1"] != "error" {
			t.Fatalf("not fenced: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
		}
		if st.Active["lv2"] != "error" {
			t.Fatalf("not fenced: st.Active[\"lv2\"] = %q, want \"error\"", st.Active["lv2"])
		}
	}
	s.clk.Advance(6 * ioTimeout) // h1's lease expires: h2 may take lv1
	s.ok("h2", "lvchange -aey vol/lv1")

	// Still no path: refused, journal kept.
	if _, err := Recover(context.Background(), d, "vol"); !errors.Is(err, ErrPathsDown) {
		t.Fatalf("with paths down: %v", err)
	}
	readJournal(t, s.stateDir)

	s.c.RestorePaths("h1")
	rep, err := Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, rep)
	}
	if !rep.Done {
		t.Fatal("report: rep.Done = false, want true")
	}
	if len(rep.Reacquired) != 1 {
		t.Fatalf("report: len(rep.Reacquired) = %v, want 1", len(rep.Reacquired))
	}
	if rep.Reacquired[0].LV != "lv2" {
		t.Fatalf("report: rep.Reacquired[0].LV = %q, want \"lv2\"", rep.Reacquired[0].LV)
	}
	if len(rep.Lost) != 1 {
		t.Fatalf("report: len(rep.Lost) = %v, want 1", len(rep.Lost))
	}
	if rep.Lost[0].LV != "lv1" {
		t.Fatalf("report: rep.Lost[0].LV = %q, want \"lv1\"", rep.Lost[0].LV)
	}
	st := s.c.State("h1")
	if !st.LockspaceJoined {
		t.Fatal("h1 after recovery: st.LockspaceJoined = false, want true")
	}
	if st.Active["lv2"] != "linear" {
		t.Fatalf("h1 after recovery: st.Active[\"lv2\"] = %q, want \"linear\"", st.Active["lv2"])
	}
	if st.Locks["lv2"] != "sh" {
		t.Fatalf("h1 after recovery: st.Locks[\"lv2\"] = %q, want \"sh\"", st.Locks["lv2"])
	}
	// vm1, paused on lv1, keeps the device open: it keeps the error target
	// and no lock, so nothing here can write to h2's LV.
	if st.Active["lv1"] != "error" {
		t.Fatalf("lv1 must stay with h2: h1: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
	}
	if st.Locks["lv1"] != "" {
		t.Fatalf("lv1 must stay with h2: h1: st.Locks[\"lv1\"] = %q, want \"\"", st.Locks["lv1"])
	}
	if st.Domains["vm1"] != "paused" {
		t.Fatalf("lv1 must stay with h2: h1: st.Domains[\"vm1\"] = %q, want \"paused\"", st.Domains["vm1"])
	}
	if s.c.State("h2").Locks["lv1"] != "ex" {
		t.Fatalf("lv1 must stay with h2: h1: s.c.State(\"h2\").Locks[\"lv1\"] = %q, want \"ex\"", s.c.State("h2").Locks["lv1"])
	}
	{
		_, ok, err := ReadJournal(s.stateDir, "vol")
		if ok {
			t.Fatal("journal still there: ok: ok = true, want false")
		}
		if err != nil {
			t.Fatalf("journal still there: ok: err = %v, want nil", err)
		}
	}
	held, err = state.OpenHeld(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range held.List() {
		got = append(got, h.LV+":"+string(h.Mode))
		if st.Locks[h.LV] != string(h.Mode) {
			t.Errorf("held.json %s/%s %s, lvmlockd %q", h.VG, h.LV, h.Mode, st.Locks[h.LV])
		}
	}
	if len(got) != len(st.Locks) {
		t.Fatalf("held.json %v, lvmlockd %v", got, st.Locks)
	}

	// Nothing left to do: a re-run is a no-op.
	{
		rep, err := Recover(context.Background(), d, "vol")
		if err != nil {
			t.Fatalf("re-run: err = %v, want nil", err)
		}
		if !rep.Done {
			t.Fatal("re-run: rep.Done = false, want true")
		}
	}
}

// The SAN blips on the simulator: vm1 (on lv1, exclusive) pauses on the
// fence's error table; once the paths are back, Recover re-locks lv1,
// reloads its table and resumes vm1. In the second run h2 held lv1 and let
// it go while h1 was fenced: the re-lock succeeds, but the lease version
// gives it away, so lv1 keeps the error table and vm1 stays paused.
func TestSimRecoverResumesOnlyUnchangedDomains(t *testing.T) {
	for _, heldElsewhere := range []bool{false, true} {
		s := newSimCluster(t, true, false)
		d := Deps{Runner: s.c.Host("h1"), StateDir: s.stateDir, MultipathAlias: "lun0", Log: t.Logf, LibvirtURI: "qemu:///system"}
		s.c.FailPaths("h1", true)
		s.clk.Advance(8 * ioTimeout)
		{
			st := s.c.State("h1")
			if st.Active["lv1"] != "error" {
				t.Fatalf("not fenced: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
			}
			if st.Domains["vm1"] != "paused" {
				t.Fatalf("not fenced: st.Domains[\"vm1\"] = %q, want \"paused\"", st.Domains["vm1"])
			}
		}
		s.clk.Advance(6 * ioTimeout)
		if heldElsewhere {
			s.ok("h2", "lvchange -aey vol/lv1")
			s.ok("h2", "lvchange -an vol/lv1")
		}
		s.c.RestorePaths("h1")
		rep, err := Recover(context.Background(), d, "vol")
		if err != nil {
			t.Fatalf("held elsewhere: err = %v, want nil", err)
		}
		if !rep.Done {
			t.Fatal("held elsewhere: rep.Done = false, want true")
		}
		if len(rep.Reacquired) != 1 {
			t.Fatalf("held elsewhere: len(rep.Reacquired) = %v, want 1", len(rep.Reacquired))
		}
		if len(rep.Domains) != 1 {
			t.Fatalf("held elsewhere: len(rep.Domains) = %v, want 1", len(rep.Domains))
		}
		st := s.c.State("h1")
		if st.Locks["lv1"] != "ex" {
			t.Fatalf("lv1 not re-locked: %+v", st)
		}
		wantTable, wantDom, wantOutcome := "linear", "running", DomainResumed
		if heldElsewhere {
			wantTable, wantDom, wantOutcome = "error", "paused", DomainKeptPaused
		}
		if st.Active["lv1"] != wantTable {
			t.Fatalf("held elsewhere: st.Active[\"lv1\"] = %v, want %v", st.Active["lv1"], wantTable)
		}
		if st.Domains["vm1"] != wantDom {
			t.Fatalf("held elsewhere: st.Domains[\"vm1\"] = %v, want %v", st.Domains["vm1"], wantDom)
		}
		if rep.Domains[0].Outcome != wantOutcome {
			t.Fatalf("held elsewhere: rep.Domains[0].Outcome = %v, want %v", rep.Domains[0].Outcome, wantOutcome)
		}
	}
}

// h2 deletes lv1 once h1's lease has expired, while h1 is fenced (found by
// the chaos schedules: recovery then retried the re-acquire forever). The
// recovery ends: lv1 is GONE, dropped from held.json, its VM kept paused.
func TestSimRecoverAfterTheLVWasDeleted(t *testing.T) {
	for _, withVM := range []bool{true, false} {
		s := newSimCluster(t, true, false)
		if !withVM {
			s.ok("h1", "virsh destroy vm1")
		}
		d := Deps{Runner: s.c.Host("h1"), StateDir: s.stateDir, MultipathAlias: "lun0", Log: t.Logf, LibvirtURI: "qemu:///system"}
		s.c.FailPaths("h1", true)
		s.clk.Advance(14 * ioTimeout) // fenced, and h1's lease expired
		s.ok("h2", "lvremove -y vol/lv1")
		s.c.RestorePaths("h1")
		rep, err := Recover(context.Background(), d, "vol")
		if err != nil {
			t.Fatalf("with VM: err = %v, want nil", err)
		}
		if !rep.Done {
			t.Fatal("with VM: rep.Done = false, want true")
		}
		if len(rep.Gone) != 1 {
			t.Fatalf("with VM: len(rep.Gone) = %v, want 1", len(rep.Gone))
		}
		if rep.Gone[0].LV != "lv1" {
			t.Fatalf("with VM: rep.Gone[0].LV = %q, want \"lv1\"", rep.Gone[0].LV)
		}
		// (The simulator drops a removed LV's device on every host; a real
		// kernel keeps h1's, which recovery removes unless a VM holds it.)
		st := s.c.State("h1")
		if withVM && (st.Domains["vm1"] != "paused" || len(rep.Domains) != 1 || rep.Domains[0].Outcome != DomainKeptPaused) {
			t.Fatalf("the VM on the deleted LV: %+v\n%s", st, rep)
		}
		if st.Active["lv1"] != "" {
			t.Fatalf("leftover device: %+v", st)
		}
		held, err := state.OpenHeld(s.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := held.Get("vol", "lv1"); ok {
			t.Fatal("a deleted LV is still recorded as held")
		}
	}
}
