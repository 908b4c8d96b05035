package sim

import (
	"errors"
	"fmt"
	goio "io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Real block devices for simulated LVs (Options.DataDir). Programs that
// write to an LV's device path themselves, such as cinder's image copy
// (qemu-img) and its clearing, need a block device there: qemu-img would
// truncate a regular file to the image's size, and O_DIRECT probes need a
// block device. Each LV gets a sparse file in DataDir attached to a loop
// device for as long as the LV exists; DevDir/VG/LV links to that loop
// device while any simulated host has the LV active. All hosts run on one
// machine, so there is one link for the cluster, not one per host. A
// snapshot's file is a copy of its origin's at creation (a point-in-time
// image, as a COW snapshot reads), and dd really copies between devices.

type devices struct {
	dataDir, devDir string
}

// lvDev is an LV's backing file and the loop device attached to it.
type lvDev struct {
	file, loop string
	// hold keeps the loop device open. It is set to clear itself on last
	// close (losetup -d of an open device), so the loop device goes away
	// when the LV is removed or the simulator exits, however it exits.
	hold *os.File
}

const (
	seekData = 3 // lseek SEEK_DATA
	seekHole = 4 // lseek SEEK_HOLE
)

// linkDir is where the cluster's device links live: DevDir/VG.
func (c *Cluster) linkDir() string { return filepath.Join(c.dev.devDir, c.opt.VG) }

// attachDevice creates l's backing file, a copy of from's data when from is
// set (a snapshot of it), and attaches a loop device to it.
func (c *Cluster) attachDevice(l *lv, from *lv) error {
	file := filepath.Join(c.dev.dataDir, l.uuid)
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	size := l.extents * c.opt.ExtentSize
	if from != nil {
		size = from.extents * c.opt.ExtentSize
	}
	err = f.Truncate(size)
	if err == nil && from != nil && from.dev != nil {
		err = copySparse(f, from.dev, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		l.dev, err = attachLoop(file)
	}
	if err != nil {
		os.Remove(file)
		return err
	}
	return nil
}

// attachLoop binds a free loop device to file and holds it open; the
// losetup -d that follows only marks it to clear on last close.
func attachLoop(file string) (*lvDev, error) {
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup --find --show %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	loop := strings.TrimSpace(string(out))
	hold, err := os.Open(loop)
	if err == nil {
		if out, derr := exec.Command("losetup", "-d", loop).CombinedOutput(); derr != nil {
			hold.Close()
			err = fmt.Errorf("losetup -d %s: %v: %s", loop, derr, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		exec.Command("losetup", "-d", loop).Run()
		return nil, err
	}
	return &lvDev{file: file, loop: loop, hold: hold}, nil
}

// copySparse copies the data extents of src's backing file into dst,
// leaving holes as holes. Writes through the loop device that the page
// cache still holds are flushed first.
func copySparse(dst *os.File, src *lvDev, size int64) error {
	if err := src.hold.Sync(); err != nil {
		return err
	}
	f, err := os.Open(src.file)
	if err != nil {
		return err
	}
	defer f.Close()
	for off := int64(0); off < size; {
		data, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return nil // nothing but holes from off on
		}
		if err != nil {
			return err
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			return err
		}
		hole = min(hole, size)
		if _, err := goio.Copy(goio.NewOffsetWriter(dst, data), goio.NewSectionReader(f, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// resizeDevice grows l's backing file to size bytes and tells the loop
// device (losetup -c), as a refresh reloads a device-mapper table.
func (c *Cluster) resizeDevice(l *lv, size int64) error {
	if l.dev == nil {
		return nil
	}
	if err := os.Truncate(l.dev.file, size); err != nil {
		return err
	}
	if out, err := exec.Command("losetup", "-c", l.dev.loop).CombinedOutput(); err != nil {
		return fmt.Errorf("losetup -c %s: %v: %s", l.dev.loop, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// detachDevice lets l's loop device go and removes its backing file.
func (c *Cluster) detachDevice(l *lv) {
	if l.dev == nil {
		return
	}
	l.dev.hold.Close()
	os.Remove(l.dev.file)
	l.dev = nil
}

// syncLinks makes DevDir/VG hold exactly one link per LV active on some host.
func (c *Cluster) syncLinks() error {
	want := map[string]string{}
	for name, l := range c.lvs {
		if l.dev == nil {
			continue
		}
		for _, h := range c.hosts {
			if h.active[name] != nil {
				want[name] = l.dev.loop
				break
			}
		}
	}
	dir := c.linkDir()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	have := map[string]string{}
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if want[e.Name()] != target {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
			continue
		}
		have[e.Name()] = target
	}
	if len(want) > 0 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for name, target := range want {
		if have[name] == "" {
			if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// devPath maps a dd operand naming one of the cluster's LVs to the loop
// device behind it, so dd works whatever DevDir is.
func (c *Cluster) devPath(path string) string {
	if name, ok := c.splitLV(path); ok && strings.HasPrefix(path, "/dev/") {
		if l := c.lvs[name]; l != nil && l.dev != nil {
			return l.dev.loop
		}
	}
	return path
}

// Close releases what the cluster holds on the machine: with DataDir, the
// loop devices, the backing files and the device links. The cluster must
// not run commands afterwards.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev == nil {
		return nil
	}
	for _, l := range c.lvs {
		c.detachDevice(l)
	}
	err := c.syncLinks()
	if rerr := os.Remove(c.linkDir()); err == nil && rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	return err
}
