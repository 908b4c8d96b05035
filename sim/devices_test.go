package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Needs root and loop devices, as the cinder driver's stage that uses it.
func TestRealDevices(t *testing.T) {
	data, devDir := t.TempDir(), t.TempDir()
	specs := []HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}}
	f := &fixture{t: t, clk: NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))}
	f.c = NewCluster(Options{Hosts: specs, IOTimeout: io, JoinTime: -1, Clock: f.clk, DataDir: data, DevDir: devDir})
	for _, s := range specs {
		f.ok(s.Name, "vgchange --lock-start vol")
	}
	link := func(name string) string { return filepath.Join(devDir, "vol", name) }
	read := func(name string, n int) []byte {
		t.Helper()
		fd, err := os.Open(link(name))
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		b := make([]byte, n)
		if _, err := fd.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}

	f.ok("h1", "lvcreate -an -Zn -y -n lv1 -L 8m vol")
	if _, err := os.Lstat(link("lv1")); !os.IsNotExist(err) {
		t.Fatalf("inactive LV has a device link: %v", err)
	}
	// Active on two hosts (shared): one link to a block device; it stays
	// until the last host deactivates.
	f.ok("h1", "lvchange -asy vol/lv1")
	f.ok("h2", "lvchange -asy vol/lv1")
	st, err := os.Stat(link("lv1"))
	if err != nil {
		t.Fatalf("lv1 device: err = %v, want nil", err)
	}
	if st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("lv1 device: st.Mode()&os.ModeDevice = %v, want != 0", st.Mode()&os.ModeDevice)
	}
	f.ok("h2", "lvchange -an vol/lv1")
	if _, err := os.Stat(link("lv1")); err != nil {
		t.Fatalf("link gone while h1 holds lv1: %v", err)
	}
	f.ok("h1", "lvchange -an vol/lv1")
	f.ok("h1", "lvchange -aey vol/lv1")

	// dd writes through the device; a snapshot keeps the data of its
	// creation while the origin changes; a clone (dd from the snapshot)
	// carries it.
	pattern := filepath.Join(t.TempDir(), "pattern")
	want := bytes.Repeat([]byte("aos-sim!"), 1<<17) // 1 MiB
	if err := os.WriteFile(pattern, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f.ok("h1", "dd if="+pattern+" of=/dev/vol/lv1 bs=1M count=1 oflag=direct conv=fsync status=none")
	if got := read("lv1", len(want)); !bytes.Equal(got, want) {
		t.Fatalf("lv1 reads %q...", got[:16])
	}
	f.ok("h1", "lvcreate -s -n snap1 -L 4m vol/lv1")
	f.ok("h1", "dd if=/dev/zero of=/dev/vol/lv1 bs=1M count=1048576 iflag=count_bytes oflag=direct conv=fsync status=none")
	if got := read("lv1", 8); !bytes.Equal(got, make([]byte, 8)) {
		t.Fatalf("lv1 not zeroed: %q", got)
	}
	f.ok("h1", "lvcreate -an -Zn -y -n lv2 -L 8m vol")
	f.ok("h1", "lvchange -aey vol/lv2")
	f.ok("h1", "dd if=/dev/vol/snap1 of=/dev/vol/lv2 bs=4M count=8388608 iflag=direct,count_bytes oflag=direct conv=fsync status=none")
	if got := read("lv2", len(want)); !bytes.Equal(got, want) {
		t.Fatalf("clone of the snapshot reads %q...", got[:16])
	}
	// A failing dd is dd's own failure.
	_, stderr, rc := f.run("h1", "dd if=/nonexistent of=/dev/vol/lv2 status=none")
	if rc != 1 {
		t.Fatalf("dd of a missing file: rc: rc = %v, want 1", rc)
	}
	if !strings.Contains(stderr, "/nonexistent") {
		t.Fatalf("dd of a missing file: rc: stderr = %q, want it to contain \"/nonexistent\"", stderr)
	}

	// lvextend grows the device.
	f.ok("h1", "lvextend -L 16m vol/lv2")
	fd, err := os.Open(link("lv2"))
	if err != nil {
		t.Fatal(err)
	}
	size, err := fd.Seek(0, 2)
	fd.Close()
	if err != nil {
		t.Fatalf("lv2 device size: err = %v, want nil", err)
	}
	if size != 16<<20 {
		t.Fatalf("lv2 device size: size = %v, want %v", size, 16<<20)
	}

	// lvremove of the origin takes its snapshot along, files and links too.
	f.ok("h1", "lvchange -an vol/lv1")
	f.ok("h1", "lvremove -y vol/lv1")
	if entries, _ := os.ReadDir(data); len(entries) != 1 {
		t.Fatalf("backing files left: %v", entries)
	}
	if err := f.c.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Fatalf("backing files after Close: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(devDir, "vol")); !os.IsNotExist(err) {
		t.Fatalf("link directory after Close: %v", err)
	}
}
