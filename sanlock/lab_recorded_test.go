package sanlock

import (
	"os"
	"testing"
)

// Full, unfiltered outputs recorded by the lab (sanlock 3.8.5, lvm2 2.03.16
// in a Debian 12 guest, lab/killhook_test.go) while the host held one LV
// exclusive and one shared.
func TestParseLabRecordedOutputs(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	st, err := ParseStatus(read("status-D.lab-healthy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseInfo(read("info.lab-healthy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dump, err := ParseDump(read("dump.lab-healthy.txt"))
	if err != nil {
		t.Fatal(err)
	}
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
