package recovery

import (
	"os"
	"testing"
)

// A fence-failed journal written before the watchdog's reset is settled at
// the next boot and kept aside; one of this boot, or one without a boot id,
// stays for recovery or the operator.
func TestSettleEarlierBoot(t *testing.T) {
	for _, tc := range []struct {
		name, journalBoot string
		settled           bool
	}{
		{"earlier boot", "boot-1", true},
		{"this boot", "boot-2", false},
		{"no boot id", "", false},
	} {
		dir := t.TempDir()
		j := &Journal{Version: journalVersion, VG: "vol", Phase: PhaseFenceFailed, BootID: tc.journalBoot,
			LVs: []FencedLV{{LV: "lv1", Device: "vol-lv1", Fenced: false}}}
		if err := writeJournal(dir, j); err != nil {
			t.Fatal(err)
		}
		got, err := SettleEarlierBoot(dir, t.TempDir(), "vol", "boot-2")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, stays, err := ReadJournal(dir, "vol")
		if err != nil {
			t.Fatal(err)
		}
		_, kept := os.Stat(EarlierBootPath(dir, "vol"))
		if (got != nil) != tc.settled {
			t.Fatalf("(got != nil) = %v, want %v", (got != nil), tc.settled)
		}
		if stays == tc.settled {
			t.Fatalf("stays = %v, want != tc.settled", stays)
		}
		if (kept == nil) != tc.settled {
			t.Fatalf("(kept == nil) = %v, want %v", (kept == nil), tc.settled)
		}
	}
}

// Nothing to settle without a journal, and never without the boot's id.
func TestSettleEarlierBootNothingToDo(t *testing.T) {
	dir := t.TempDir()
	{
		j, err := SettleEarlierBoot(dir, "", "vol", "boot-2")
		if j != nil {
			t.Fatalf("no journal: j = %v, want nil", j)
		}
		if err != nil {
			t.Fatalf("no journal: err = %v, want nil", err)
		}
	}
	if _, err := SettleEarlierBoot(dir, "", "vol", ""); err == nil {
		t.Fatal("settled without knowing the running boot")
	}
}
