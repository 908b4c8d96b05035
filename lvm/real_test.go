//go:build lvmreal

package lvm

// Runs the Client against the real lvm2 binary (Debian 12: 2.03.16) on a
// loop device, with its own LVM_SYSTEM_DIR so nothing outside the test is
// scanned or touched. Needs root and loop devices; run by
// scripts/test.d/40-lvm-real.sh. The host has no device-mapper in the test
// container, so lvm.conf sets global/activation=0: this proves the argv,
// the report fields and JSON keys and the error strings of metadata
// operations, not activation or locking (those need the lab's guests).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

func realHost(t *testing.T) (*run.Local, string) {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "pv.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", loop, err, out)
		}
	})
	etc := filepath.Join(dir, "etc")
	lock := filepath.Join(dir, "lock")
	for _, d := range []string{etc, lock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`devices { filter = [ "a|^%s$|", "r|.*|" ] use_devicesfile = 0 obtain_device_list_from_udev = 0 }
global { locking_dir = "%s" use_lvmlockd = 0 activation = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
`, loop, lock)
	if err := os.WriteFile(filepath.Join(etc, "lvm.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// lvm warns about inherited descriptors (go test keeps some open).
	return &run.Local{Env: []string{"LVM_SYSTEM_DIR=" + etc, "LVM_SUPPRESS_FD_WARNINGS=1"}, DefaultTimeout: time.Minute}, loop
}

func TestRealLVM(t *testing.T) {
	h, loop := realHost(t)
	ctx := context.Background()
	vg := fmt.Sprintf("aostest%d", os.Getpid())
	if _, err := h.Run(ctx, run.Cmd{Argv: []string{"vgcreate", vg, loop}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := h.Run(ctx, run.Cmd{Argv: []string{"vgremove", "-f", vg}}); err != nil {
			t.Error(err)
		}
	})
	c := New(h, Options{VolumeGroups: []string{vg, "aosabsent"}})

	vgs, err := c.VGs(ctx, vg)
	if err != nil {
		t.Fatal(err)
	}
	// 64 MiB minus the 1 MiB PV header: 15 extents of 4 MiB.
	if len(vgs) != 1 || vgs[0].Name != vg || vgs[0].Size != 15*4<<20 || vgs[0].Free != vgs[0].Size ||
		vgs[0].ExtentSize != 4<<20 || vgs[0].LVCount != 0 || vgs[0].UUID == "" || vgs[0].LockType != "" {
		t.Fatalf("VGs: %+v", vgs)
	}
	if _, err := c.VGs(ctx, "aosabsent"); !errors.Is(err, errdefs.ErrVolumeGroupNotFound) {
		t.Fatalf("absent VG: %v", err)
	}

	if err := c.Create(ctx, vg, "volume-1", 5<<20); err != nil { // rounded up to 2 extents
		t.Fatal(err)
	}
	if err := c.Create(ctx, vg, "volume-1", 4<<20); !errors.Is(err, errdefs.ErrVolumeExists) {
		t.Fatalf("create twice: %v", err)
	}
	if err := c.Create(ctx, vg, "volume-2", 1<<30); !errors.Is(err, errdefs.ErrInsufficientSpace) {
		t.Fatalf("create too big: %v", err)
	}
	if err := c.Create(ctx, vg, "volume-t", 4<<20, "aos_agent_clone_copy"); err != nil {
		t.Fatal(err)
	}
	{
		lv, err := c.LV(ctx, vg, "volume-t")
		if err != nil {
			t.Fatalf("tagged LV: err = %v, want nil", err)
		}
		if !lv.HasTag("aos_agent_clone_copy") {
			t.Fatal("tagged LV: lv.HasTag(\"aos_agent_clone_copy\") = false, want true")
		}
		if len(lv.Tags) != 1 {
			t.Fatalf("tagged LV: len(lv.Tags) = %v, want 1", len(lv.Tags))
		}
	}
	if err := c.Remove(ctx, vg, "volume-t"); err != nil {
		t.Fatal(err)
	}
	lv, err := c.LV(ctx, vg, "volume-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(lv.Tags) != 0 {
		t.Fatalf("untagged LV has tags %q", lv.Tags)
	}
	if lv.Name != "volume-1" {
		t.Fatalf("LV: lv.Name = %q, want \"volume-1\"", lv.Name)
	}
	if lv.VG != vg {
		t.Fatalf("LV: lv.VG = %v, want %v", lv.VG, vg)
	}
	if lv.Size != 8<<20 {
		t.Fatalf("LV: lv.Size = %v, want %v", lv.Size, 8<<20)
	}
	if lv.UUID == "" {
		t.Fatalf("LV: lv.UUID = %v, want != \"\"", lv.UUID)
	}
	if lv.Attr.Raw[:4] != "-wi-" {
		t.Fatalf("LV: lv.Attr.Raw[:4] = %q, want \"-wi-\"", lv.Attr.Raw[:4])
	}
	if lv.Attr.Active() {
		t.Fatal("LV: lv.Attr.Active() = true, want false")
	}
	if _, err := c.LV(ctx, vg, "volume-9"); !errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("absent LV: %v", err)
	}

	if err := c.Extend(ctx, vg, "volume-1", 8<<20, false); err != nil {
		t.Fatalf("extend to the current size must succeed: %v", err)
	}
	if err := c.Extend(ctx, vg, "volume-1", 12<<20, true); err != nil {
		t.Fatalf("extend with shupdate,norefresh: %v", err)
	}
	if err := c.Extend(ctx, vg, "volume-1", 1<<30, false); !errors.Is(err, errdefs.ErrInsufficientSpace) {
		t.Fatalf("extend too big: %v", err)
	}
	if err := c.Extend(ctx, vg, "volume-1", 4<<20, false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("shrink: %v", err)
	}
	lvs, err := c.LVs(ctx, vg)
	if err != nil {
		t.Fatalf("LVs after extend: err = %v, want nil", err)
	}
	if len(lvs) != 1 {
		t.Fatalf("LVs after extend: len(lvs) = %v, want 1", len(lvs))
	}
	if lvs[0].Size != 12<<20 {
		t.Fatalf("LVs after extend: lvs[0].Size = %v, want %v", lvs[0].Size, 12<<20)
	}

	if err := c.Remove(ctx, vg, "volume-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, vg, "volume-1"); !errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
}
