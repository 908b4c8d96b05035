package multipath

import (
	"os"
	"testing"
)

// Outputs recorded by the lab (multipath-tools 0.9.4 in a Debian 12 guest,
// lab/killhook_test.go): the formats the source-derived fixtures predicted.
func TestParseLabRecordedOutputs(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m, err := ParseMapJSON(read("show-map-json.lun0.lab.json"))
	if err != nil {
		t.Fatalf("show map lun0 json: err = %v, want nil", err)
	}
	if m.Name != "lun0" {
		t.Fatalf("show map lun0 json: m.Name = %q, want \"lun0\"", m.Name)
	}
	if m.WWID != "35000c50015ea71ac" {
		t.Fatalf("show map lun0 json: m.WWID = %q, want \"35000c50015ea71ac\"", m.WWID)
	}
	if len(m.Paths()) != 2 {
		t.Fatalf("show map lun0 json: len(m.Paths()) = %v, want 2", len(m.Paths()))
	}
	if len(m.ActivePaths()) != 2 {
		t.Fatalf("show map lun0 json: len(m.ActivePaths()) = %v, want 2", len(m.ActivePaths()))
	}
	maps, err := ParseMapsJSON(read("show-maps-json.healthy.lab.json"))
	if err != nil {
		t.Fatalf("show maps json: err = %v, want nil", err)
	}
	if len(maps) != 1 {
		t.Fatalf("show maps json: len(maps) = %v, want 1", len(maps))
	}
	if maps[0].Queueing != "off" {
		t.Fatalf("show maps json: maps[0].Queueing = %q, want \"off\"", maps[0].Queueing)
	}
	paths, err := ParsePaths(read("show-paths-raw.lab.txt"))
	if err != nil {
		t.Fatalf("show paths raw: err = %v, want nil", err)
	}
	if len(paths) != 2 {
		t.Fatalf("show paths raw: len(paths) = %v, want 2", len(paths))
	}
	if paths[1].Dev != "sdb" {
		t.Fatalf("show paths raw: paths[1].Dev = %q, want \"sdb\"", paths[1].Dev)
	}
	if paths[1].Map != "lun0" {
		t.Fatalf("show paths raw: paths[1].Map = %q, want \"lun0\"", paths[1].Map)
	}
	if !paths[1].Active() {
		t.Fatal("show paths raw: paths[1].Active() = false, want true")
	}
	if paths[0].HCIL != "2:0:0:0" {
		t.Fatalf("show paths raw: paths[0].HCIL = %q, want \"2:0:0:0\"", paths[0].HCIL)
	}
}
