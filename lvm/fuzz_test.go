package lvm

import (
	"errors"
	"fmt"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

func reportSeeds(f *testing.F) {
	for _, name := range []string{
		"lvs.01-basic.after-lvcreate.recorded.json", "lvs.01-basic.lv1-sh-lv2-sh.recorded.json",
		"lvs.01-basic.lv1-sh-lv2-sh.bytes.json", "vgs.01-basic.after-lvcreate.recorded.json",
		"vgs.01-basic.after-lvcreate.bytes.json",
	} {
		f.Add([]byte(fixture.Text(f, name)))
	}
	f.Add([]byte(`{"report":[{"lv":[]}]}`))
}

func FuzzParseLVs(f *testing.F) {
	reportSeeds(f)
	f.Fuzz(func(t *testing.T, out []byte) {
		lvs, err := ParseLVs(out)
		if err != nil && lvs != nil {
			t.Fatal("rows returned with an error")
		}
		for _, lv := range lvs {
			if lv.Name == "" {
				t.Fatalf("incomplete row accepted: lv.Name = %v, want != \"\"", lv.Name)
			}
			if lv.VG == "" {
				t.Fatalf("incomplete row accepted: lv.VG = %v, want != \"\"", lv.VG)
			}
			if len(lv.Attr.Raw) < 10 {
				t.Fatalf("incomplete row accepted: len(lv.Attr.Raw) = %v, want >= 10", len(lv.Attr.Raw))
			}
		}
	})
}

func FuzzParseVGs(f *testing.F) {
	reportSeeds(f)
	f.Fuzz(func(t *testing.T, out []byte) {
		vgs, err := ParseVGs(out)
		if err != nil && vgs != nil {
			t.Fatal("rows returned with an error")
		}
		for _, vg := range vgs {
			if vg.Name == "" {
				t.Fatalf("bad row accepted: vg.Name = %v, want != \"\"", vg.Name)
			}
			if vg.LVCount < 0 {
				t.Fatalf("bad row accepted: vg.LVCount = %v, want >= 0", vg.LVCount)
			}
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases {
		f.Add(tc.stderr, tc.exit, false)
	}
	f.Add("", -1, true)
	f.Fuzz(func(t *testing.T, stderr string, exit int, timedOut bool) {
		rerr := &run.Error{Argv: []string{"lvchange", "-aey", "vol/lv1"}, ExitCode: exit, Stderr: stderr, TimedOut: timedOut}
		err := Classify(rerr.Argv, rerr)
		if err == nil {
			t.Fatal("a failure must classify: err = nil, want non-nil")
		}
		if errdefs.ClassOf(err) == nil {
			t.Fatal("a failure must classify: errdefs.ClassOf(err) = nil, want non-nil")
		}
		var got *run.Error
		if !errors.As(err, &got) {
			t.Fatal("*run.Error lost")
		}
		if errdefs.ClassOf(err) == errdefs.ErrUnknown && !timedOut && !strings.Contains(err.Error(), strings.TrimSpace(stderr)) {
			t.Fatalf("unknown error lost stderr: %v", err)
		}
	})
}

func FuzzBatchStderr(f *testing.F) {
	f.Add(fixture.Text(f, "lab/lab-batch-conflict2.stderr"), "lv50")
	for _, tc := range classifyCases {
		f.Add(tc.stderr, "lv1")
	}
	f.Fuzz(func(t *testing.T, stderr, lv string) {
		lvs := []string{lv, "lv1", "lv50"}
		perLV, rest := splitBatchStderr("vol", lvs, stderr)
		assigned := map[string]bool{}
		for _, l := range rest {
			assigned[l] = true
		}
		for name, l := range perLV {
			if name != lvs[0] && name != "lv1" && name != "lv50" {
				t.Fatalf("unrequested LV %q", name)
			}
			for _, line := range l {
				assigned[line] = true
			}
		}
		for _, line := range strings.Split(stderr, "\n") {
			if line = strings.TrimSpace(line); line != "" && !assigned[line] {
				t.Fatalf("line %q lost", line)
			}
		}
		argv := []string{"lvchange", "-aey", "vol/" + lv, "vol/lv1", "vol/lv50"}
		res, err := batchResult(argv, "vol", lvs, &run.Error{Argv: argv, ExitCode: 5, Stderr: stderr})
		if err == nil {
			t.Fatal("batch result: err = nil, want non-nil")
		}
		if len(res.Changed)+len(res.Failed) < 2 {
			t.Fatalf("batch result: len(res.Changed)+len(res.Failed) = %v, want >= 2", len(res.Changed)+len(res.Failed))
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"vol", "-a", ".", "..", "a_tmeta", "snapshot", strings.Repeat("x", 128), "a/b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		vgErr, lvErr := ValidateVGName(name), ValidateLVName(name)
		if vgErr != nil && lvErr == nil {
			t.Fatalf("%q: an invalid VG name is a valid LV name", name)
		}
		if vgErr == nil && (strings.ContainsAny(name, "/ \n\x00") || len(name) > 127) {
			t.Fatalf("%q accepted", name)
		}
	})
}

// BenchmarkParseLVs parses a 1000-LV report as lvs prints it.
func BenchmarkParseLVs(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("  {\n      \"report\": [\n          {\n              \"lv\": [\n")
	for i := range 1000 {
		if i > 0 {
			sb.WriteString(",\n")
		}
		fmt.Fprintf(&sb, `                  {"lv_name":"volume-%08d-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "vg_name":"vol", "lv_uuid":"5GAkzr-fbKb-tu8D-M6M1-3ADI-fiMs-oh%04d", "lv_size":"10737418240", "lv_attr":"-wi-ao----", "lv_lockargs":"1.0.0:%d", "origin":"", "lv_active_locally":"active locally", "lv_active_exclusively":"active exclusively", "lv_active_remotely":"", "lv_device_open":"open"}`, i, i, 70254592+i<<20)
	}
	sb.WriteString("\n              ]\n          }\n      ]\n  }\n")
	out := []byte(sb.String())
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		lvs, err := ParseLVs(out)
		if err != nil || len(lvs) != 1000 {
			b.Fatal(len(lvs), err)
		}
	}
}
