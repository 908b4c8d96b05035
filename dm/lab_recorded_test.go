package dm

import (
	"os"
	"testing"
)

// Outputs recorded by the lab (Debian 12 guest, lab/killhook_test.go): open
// counts while a VM holds vm-disk, and the tables after the kill hook
// fenced the VG (lvmlock spared).
func TestParseLabRecordedOutputs(t *testing.T) {
	b, err := os.ReadFile("testdata/info.healthy.lab.txt")
	if err != nil {
		t.Fatal(err)
	}
	devs, err := ParseInfo(b)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(devs) != 4 {
		t.Fatalf("len(devs) = %v, want 4", len(devs))
	}
	open := map[string]int{}
	for _, d := range devs {
		if d.VG == "vol" {
			open[d.LV] = d.Open
		}
	}
	if open["vm-disk"] != 1 {
		t.Fatalf("open counts: open[\"vm-disk\"] = %v, want 1", open["vm-disk"])
	}
	if open["shared-disk"] != 0 {
		t.Fatalf("open counts: open[\"shared-disk\"] = %v, want 0", open["shared-disk"])
	}
	if open["lvmlock"] != 1 {
		t.Fatalf("open counts: open[\"lvmlock\"] = %v, want 1", open["lvmlock"])
	}
	if b, err = os.ReadFile("testdata/table.fenced.lab.txt"); err != nil {
		t.Fatal(err)
	}
	tables, err := ParseTables(b)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(tables) != 4 {
		t.Fatalf("len(tables) = %v, want 4", len(tables))
	}
	errored := map[string]bool{}
	for i := range tables {
		errored[tables[i].Name] = tables[i].Errored()
	}
	for name, want := range map[string]bool{"vol-vm--disk": true, "vol-shared--disk": true, "vol-lvmlock": false, "lun0": false} {
		if errored[name] != want {
			t.Errorf("%s errored = %v, want %v", name, errored[name], want)
		}
	}
}
