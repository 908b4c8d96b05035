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
	if ls := dump.Lockspace("vol"); ls == nil || ls.KillVG() || ls.Fields.Uint("host_id") != 1 {
		t.Fatalf("dump: %+v", ls)
	}
	h := Health(st, info, dump)["vol"]
	if h == nil || h.State() != StateJoined || h.HostID != 1 || len(h.Locks) != 2 {
		t.Fatalf("health: %+v", h)
	}
	var ex, sh int
	for _, m := range h.Locks {
		if m == ModeEx {
			ex++
		} else if m == ModeSh {
			sh++
		}
	}
	if ex != 1 || sh != 1 {
		t.Fatalf("locks %v", h.Locks)
	}
}
