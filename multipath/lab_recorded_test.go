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
	if err != nil || m.Name != "lun0" || m.WWID != "35000c50015ea71ac" || len(m.Paths()) != 2 || len(m.ActivePaths()) != 2 {
		t.Fatalf("show map lun0 json: %+v %v", m, err)
	}
	maps, err := ParseMapsJSON(read("show-maps-json.healthy.lab.json"))
	if err != nil || len(maps) != 1 || maps[0].Queueing != "off" {
		t.Fatalf("show maps json: %+v %v", maps, err)
	}
	paths, err := ParsePaths(read("show-paths-raw.lab.txt"))
	if err != nil || len(paths) != 2 || paths[1].Dev != "sdb" || paths[1].Map != "lun0" || !paths[1].Active() || paths[0].HCIL != "2:0:0:0" {
		t.Fatalf("show paths raw: %+v %v", paths, err)
	}
}
