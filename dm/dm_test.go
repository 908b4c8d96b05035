package dm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

func recordedTables(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "table.recorded-*.txt"))
	if err != nil {
		t.Fatalf("no recorded tables: err = %v, want nil", err)
	}
	if len(files) == 0 {
		t.Fatalf("no recorded tables: len(files) = %v, want != 0", len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestParseTablesEveryRecordedCapture(t *testing.T) {
	for name, b := range recordedTables(t) {
		ts, err := ParseTables(b)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if len(ts) == 0 {
			t.Fatalf("len(ts) = %v, want != 0", len(ts))
		}
		for _, tb := range ts {
			if len(tb.Segments) != 1 {
				t.Fatalf("%s: len(tb.Segments) = %v, want 1", name, len(tb.Segments))
			}
			if tb.Segments[0].Length == 0 {
				t.Errorf("%s: tb.Segments[0].Length = %v, want != 0", name, tb.Segments[0].Length)
			}
		}
	}
}

// After the kill script ran (lab run b), the LV tables are the error target.
func TestParseTablesErrorTargets(t *testing.T) {
	ts, err := ParseTables(recordedTables(t)["table.recorded-07.txt"])
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Table{}
	for _, tb := range ts {
		byName[tb.Name] = tb
	}
	lv1, lun := byName["vol-lv1"], byName["lun0"]
	if !lv1.Errored() {
		t.Fatal("vol-lv1: lv1.Errored() = false, want true")
	}
	if lv1.Segments[0].Length != 131072 {
		t.Fatalf("vol-lv1: lv1.Segments[0].Length = %v, want 131072", lv1.Segments[0].Length)
	}
	if lv1.Segments[0].Args != "" {
		t.Fatalf("vol-lv1: lv1.Segments[0].Args = %q, want \"\"", lv1.Segments[0].Args)
	}
	if lun.Errored() {
		t.Fatal("lun0: lun.Errored() = true, want false")
	}
	if lun.Segments[0].Target != "multipath" {
		t.Fatalf("lun0: lun.Segments[0].Target = %q, want \"multipath\"", lun.Segments[0].Target)
	}
	if lun.Segments[0].Args == "" {
		t.Fatalf("lun0: lun.Segments[0].Args = %v, want != \"\"", lun.Segments[0].Args)
	}
	if (&Table{}).Errored() {
		t.Fatal("a table without segments is not errored")
	}
}

func TestParseTablesMultiSegmentAndErrors(t *testing.T) {
	ts, err := ParseTables([]byte("a-b: 0 10 linear 8:0 0\na-b: 10 20 linear 8:16 0\nc: 0 5 error\nNo devices found\n"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(ts) != 2 {
		t.Fatalf("len(ts) = %v, want 2", len(ts))
	}
	if len(ts[0].Segments) != 2 {
		t.Fatalf("len(ts[0].Segments) = %v, want 2", len(ts[0].Segments))
	}
	if ts[0].Segments[1].Start != 10 {
		t.Fatalf("ts[0].Segments[1].Start = %v, want 10", ts[0].Segments[1].Start)
	}
	if ts[1].Segments[0].Target != "error" {
		t.Fatalf("ts[1].Segments[0].Target = %q, want \"error\"", ts[1].Segments[0].Target)
	}
	for _, bad := range []string{"no colon", ": 0 1 linear", "a: 0 1", "a: x 1 linear", "a: 0 y linear"} {
		if _, err := ParseTables([]byte(bad)); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}

func TestSplitLVMName(t *testing.T) {
	for _, c := range []struct {
		name, vg, lv, layer string
		ok                  bool
	}{
		{"vol-lv1", "vol", "lv1", "", true},
		{"vol-lvmlock", "vol", "lvmlock", "", true},
		{"vol-volume--1b2c--3d", "vol", "volume-1b2c-3d", "", true},
		{"my--vg-my--lv-real", "my-vg", "my-lv", "real", true},
		{"vg-lv-cow", "vg", "lv", "cow", true},
		{"vg---lv", "vg-", "lv", "", true},
		{"lun0", "", "", "", false},
		{"-lv", "", "", "", false},
		{"vg-", "", "", "", false},
		{"vg-lv-", "", "", "", false},
		{"a-b-c-d", "", "", "", false},
	} {
		vg, lv, layer, ok := SplitLVMName(c.name)
		if vg != c.vg {
			t.Errorf("%q: vg = %v, want %v", c.name, vg, c.vg)
		}
		if lv != c.lv {
			t.Errorf("%q: lv = %v, want %v", c.name, lv, c.lv)
		}
		if layer != c.layer {
			t.Errorf("%q: layer = %v, want %v", c.name, layer, c.layer)
		}
		if ok != c.ok {
			t.Errorf("%q: ok = %v, want %v", c.name, ok, c.ok)
		}
	}
	for _, c := range [][2]string{{"vol", "lv1"}, {"my-vg", "volume-1-2"}, {"a--", "b-"}} {
		vg, lv, layer, ok := SplitLVMName(LVMName(c[0], c[1]))
		if !ok {
			t.Errorf("round trip %q: ok = false, want true", c)
		}
		if vg != c[0] {
			t.Errorf("round trip %q: vg = %v, want %v", c, vg, c[0])
		}
		if lv != c[1] {
			t.Errorf("round trip %q: lv = %v, want %v", c, lv, c[1])
		}
		if layer != "" {
			t.Errorf("round trip %q: layer = %q, want \"\"", c, layer)
		}
	}
}

func TestParseInfo(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "info.source.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ParseInfo(b)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(ds) != 6 {
		t.Fatalf("len(ds) = %v, want 6", len(ds))
	}
	{
		d := ds[0]
		if d.Name != "lun0" {
			t.Fatalf("d.Name = %q, want \"lun0\"", d.Name)
		}
		if d.Open != 1 {
			t.Fatalf("d.Open = %v, want 1", d.Open)
		}
		if d.VG != "" {
			t.Fatalf("d.VG = %q, want \"\"", d.VG)
		}
		if d.UUID != "mpath-35000c50015ea71ac" {
			t.Fatalf("d.UUID = %q, want \"mpath-35000c50015ea71ac\"", d.UUID)
		}
	}
	{
		d := ds[1]
		if d.VG != "vol" {
			t.Fatalf("d.VG = %q, want \"vol\"", d.VG)
		}
		if d.LV != "lv1" {
			t.Fatalf("d.LV = %q, want \"lv1\"", d.LV)
		}
		if d.Open != 2 {
			t.Fatalf("d.Open = %v, want 2", d.Open)
		}
		if d.Attr != "L--w" {
			t.Fatalf("d.Attr = %q, want \"L--w\"", d.Attr)
		}
	}
	{
		d := ds[4]
		if d.VG != "my-vg" {
			t.Fatalf("d.VG = %q, want \"my-vg\"", d.VG)
		}
		if d.LV != "my-lv" {
			t.Fatalf("d.LV = %q, want \"my-lv\"", d.LV)
		}
		if d.Layer != "real" {
			t.Fatalf("d.Layer = %q, want \"real\"", d.Layer)
		}
	}
	{
		d := ds[5]
		if d.Name != "plain:dev" {
			t.Fatalf("name with separator: d.Name = %q, want \"plain:dev\"", d.Name)
		}
		if d.UUID != "" {
			t.Fatalf("name with separator: d.UUID = %q, want \"\"", d.UUID)
		}
	}
	for _, bad := range []string{"1:L--w:uuid", "x:L--w:u:n", "1:L--w:u:"} {
		if _, err := ParseInfo([]byte(bad)); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
	{
		ds, err := ParseInfo([]byte("No devices found\n"))
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if len(ds) != 0 {
			t.Fatalf("len(ds) = %v, want 0", len(ds))
		}
	}
}

func TestClientArgv(t *testing.T) {
	ctx := context.Background()
	table := string(recordedTables(t)["table.recorded-01.txt"])
	s := run.NewScripted(t,
		run.Step{Argv: []string{"dmsetup", "table"}, Stdout: table},
		run.Step{Argv: []string{"dmsetup", "info", "-c", "--noheadings", "--separator", ":", "-o", "open,attr,uuid,name"}, Stdout: "0:L--w:LVM-x:vol-lv1\n"},
		run.Step{Argv: []string{"dmsetup", "--noudevsync", "wipe_table", "vol-lv1", "vol-lv2"}},
		run.Step{Argv: []string{"dmsetup", "--noudevsync", "wipe_table", "vol-gone"}, ExitCode: 1, Stderr: "Device does not exist.\nCommand failed.\n"},
		run.Step{Argv: []string{"dmsetup", "--noudevsync", "wipe_table", "vol-lv1", "vol-gone"}, ExitCode: 1, Stderr: "Device does not exist.\nCommand failed.\n"},
		run.Step{Argv: []string{"dmsetup", "--noudevsync", "wipe_table", "vol-lv1"}, Err: &run.Error{Argv: []string{"dmsetup"}, ExitCode: -1, TimedOut: true, Err: context.DeadlineExceeded}},
		run.Step{Argv: []string{"dmsetup", "table"}, ExitCode: 1, Stderr: "boom"},
		run.Step{Argv: []string{"dmsetup", "info", "-c", "--noheadings", "--separator", ":", "-o", "open,attr,uuid,name"}, ExitCode: 1},
	)
	c := New(s, time.Second)
	{
		ts, err := c.Tables(ctx)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if len(ts) == 0 {
			t.Fatalf("len(ts) = %v, want != 0", len(ts))
		}
	}
	{
		ds, err := c.Info(ctx)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if ds[0].LV != "lv1" {
			t.Fatalf("ds[0].LV = %q, want \"lv1\"", ds[0].LV)
		}
	}
	if err := c.WipeTables(ctx, "vol-lv1", "vol-lv2"); err != nil {
		t.Fatal(err)
	}
	if err := c.WipeTables(ctx, "vol-gone"); !errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("missing device: %v", err)
	}
	// Of several names, which one is missing is not known: not NotFound.
	if err := c.WipeTables(ctx, "vol-lv1", "vol-gone"); err == nil || errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("missing one of two devices: %v", err)
	}
	if err := c.WipeTables(ctx, "vol-lv1"); !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	if _, err := c.Tables(ctx); err == nil {
		t.Fatal("failure lost")
	}
	if _, err := c.Info(ctx); err == nil {
		t.Fatal("failure lost")
	}
	for _, bad := range [][]string{{""}, {"-f"}, {"a/b"}, {"a b"}, {"vol-lv1", "-f"}, nil} {
		if err := c.WipeTables(ctx, bad...); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseTables(f *testing.F) {
	for _, b := range recordedTables(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ts, err := ParseTables(b); err == nil {
			for i := range ts {
				ts[i].Errored()
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "info.source.txt")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseInfo(b) })
}

// Decoding must invert encoding for every VG/LV pair LVM accepts (neither
// name starts with '-': lvm2 _validate_name).
func FuzzSplitLVMName(f *testing.F) {
	f.Add("vol", "volume-1")
	f.Add("my-vg", "-")
	f.Fuzz(func(t *testing.T, vg, lv string) {
		SplitLVMName(vg + "-" + lv)
		if vg == "" || lv == "" || vg[0] == '-' || lv[0] == '-' {
			return
		}
		gotVG, gotLV, layer, ok := SplitLVMName(LVMName(vg, lv))
		if ok && (gotVG != vg || gotLV != lv || layer != "") {
			t.Fatalf("%q/%q -> %q/%q/%q", vg, lv, gotVG, gotLV, layer)
		}
	})
}

func TestUserLV(t *testing.T) {
	for name, want := range map[string]string{
		"vol-vm--disk":      "vol/vm-disk",
		"vol-lvmlock":       "", // lvmlockd's lease LV
		"vol-origin-real":   "", // a layer under a snapshot origin
		"vol-snap-cow":      "",
		"lun0":              "", // not an LV
		"my--vg-volume--42": "my-vg/volume-42",
	} {
		got := ""
		if vg, lv, ok := UserLV(name); ok {
			got = vg + "/" + lv
		}
		if got != want {
			t.Errorf("UserLV(%q) = %q, want %q", name, got, want)
		}
	}
}
