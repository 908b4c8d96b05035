package sanlock

import (
	"os"
	"testing"
)

// Full, unfiltered outputs recorded by the lab (sanlock 3.8.5, lvm2 2.03.16
// in a Debian 12 guest, lab/killhook_test.go) while the host held one LV
// exclusive and one shared.
func TestParseLabRecordedOutputs(t *testing.T) {
	st, info, dump := parseRecorded(t, "lab-healthy")
	{
		ls := dump.Lockspace("vol")
		if ls == nil {
			t.Fatal("dump: ls = nil, want non-nil")
		}
		if ls.KillVG() {
			t.Fatal("dump: ls.KillVG() = true, want false")
		}
		if ls.Fields.Uint("host_id") != 1 {
			t.Fatalf("dump: ls.Fields.Uint(\"host_id\") = %v, want 1", ls.Fields.Uint("host_id"))
		}
	}
	h := Health(st, info, dump)["vol"]
	if h == nil {
		t.Fatal("health: h = nil, want non-nil")
	}
	if h.State() != StateJoined {
		t.Fatalf("health: h.State() = %v, want %v", h.State(), StateJoined)
	}
	if h.HostID != 1 {
		t.Fatalf("health: h.HostID = %v, want 1", h.HostID)
	}
	if len(h.Locks) != 2 {
		t.Fatalf("health: len(h.Locks) = %v, want 2", len(h.Locks))
	}
	var ex, sh int
	for _, m := range h.Locks {
		if m == ModeEx {
			ex++
		} else if m == ModeSh {
			sh++
		}
	}
	if ex != 1 {
		t.Fatalf("locks: ex = %v, want 1", ex)
	}
	if sh != 1 {
		t.Fatalf("locks: sh = %v, want 1", sh)
	}
}

// Recorded by the lab (lab/killhook_test.go, rejoinUnheld) after the host lost
// every path holding no LV lock: sanlock dropped its lockspace without a
// killpath, lvmlockd kept its own (create_done=1, no thread_stop, no kill_vg).
func TestParseLabRecordedDroppedLockspace(t *testing.T) {
	st, info, dump := parseRecorded(t, "lab-dropped")
	if ls := st.Lockspace(LockspacePrefix + "vol"); ls != nil {
		t.Fatalf("sanlock status: lockspace %+v, want none", ls)
	}
	if ls := dump.Lockspace("vol"); ls == nil || ls.KillVG() {
		t.Fatalf("lvmlockd's lockspace: %+v, want one without kill_vg", ls)
	}
	h := Health(st, info, dump)["vol"]
	if h == nil {
		t.Fatal("health: h = nil, want non-nil")
	}
	if h.State() != StateDropped {
		t.Fatalf("health: h.State() = %v, want %v", h.State(), StateDropped)
	}
	for uuid, m := range h.Locks {
		if m.Held() {
			t.Errorf("lock %s %s held in a dropped lockspace", uuid, m)
		}
	}
}

// parseRecorded parses the three outputs the lab recorded under label:
// sanlock client status -D, lvmlockctl --info and lvmlockctl --info --dump.
func parseRecorded(t *testing.T, label string) (*Status, *Info, *Dump) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name + "." + label + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	st, err := ParseStatus(read("status-D"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseInfo(read("info"))
	if err != nil {
		t.Fatal(err)
	}
	dump, err := ParseDump(read("dump"))
	if err != nil {
		t.Fatal(err)
	}
	return st, info, dump
}
