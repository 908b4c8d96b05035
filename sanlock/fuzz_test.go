package sanlock

import (
	"github.com/aos-agent/aos-agent/internal/fixture"
	"os"
	"path/filepath"
	"testing"
)

// seed adds every testdata file and every recorded capture of cmd.
func seed(f *testing.F, cmds ...string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, cmd := range cmds {
		for _, log := range []string{"run-g.02-fault.sh.h1.log", "run-twohost.03-twohost.sh.h1.log"} {
			for _, b := range captures(f, log, cmd) {
				f.Add(b)
			}
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	seed(f, "sanlock client status", "sanlock client status -D")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err == nil {
			for _, l := range Health(st, nil, nil) {
				l.State()
			}
		}
	})
}

func FuzzParseHostStatus(f *testing.F) {
	seed(f, "sanlock client host_status")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseHostStatus(b) })
}

func FuzzParseRenewal(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseRenewal(b) })
}

func FuzzParseGets(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseGets(b) })
}

func FuzzParseInfo(f *testing.F) {
	seed(f, "lvmlockctl --info")
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, err := ParseInfo(b); err == nil {
			for _, l := range Health(nil, in, nil) {
				l.State()
			}
		}
	})
}

func FuzzParseDump(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseDump(b); err == nil {
			for _, l := range Health(nil, nil, d) {
				l.State()
			}
		}
	})
}

// The monitor runs status -D and --info every few seconds: parse + merge
// of a full real -D snapshot must stay cheap.
func BenchmarkStatusInfoHealth(b *testing.B) {
	status := fixture.Read(b, "status-D.devhost.txt")
	info := captures(b, "run-g.02-fault.sh.h1.log", "lvmlockctl --info")[0]
	b.ReportAllocs()
	for b.Loop() {
		st, err := ParseStatus(status)
		if err != nil {
			b.Fatal(err)
		}
		in, err := ParseInfo(info)
		if err != nil {
			b.Fatal(err)
		}
		Health(st, in, nil)
	}
}
