// Package dm reads and changes device-mapper state through dmsetup: tables,
// open counts, wiping a table to the error target, and mapping LVM's dm
// names back to VG/LV. Every command goes through run.Runner.
package dm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// Table is one device's table: one segment per line of `dmsetup table`.
type Table struct {
	Name     string
	Segments []Segment
}

// Segment is "start length target args" in 512-byte sectors.
type Segment struct {
	Start  uint64
	Length uint64
	Target string // linear, multipath, error, ...
	Args   string
}

// Errored reports whether every segment is the error target: the device
// fails all I/O (what `dmsetup wipe_table` leaves behind).
func (t *Table) Errored() bool {
	for _, s := range t.Segments {
		if s.Target != "error" {
			return false
		}
	}
	return len(t.Segments) > 0
}

// ParseTables parses `dmsetup table`: "name: start length target args"
// lines, a multi-segment device printing one line per segment.
func ParseTables(b []byte) ([]Table, error) {
	var out []Table
	for n, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, " \r")
		if l == "" || l == "No devices found" {
			continue
		}
		name, rest, ok := strings.Cut(l, ": ")
		if !ok || name == "" {
			return nil, fmt.Errorf("dmsetup table line %d: no name: %q", n+1, l)
		}
		f := strings.SplitN(rest, " ", 4)
		if len(f) < 3 {
			return nil, fmt.Errorf("dmsetup table line %d: short segment %q", n+1, l)
		}
		start, err1 := strconv.ParseUint(f[0], 10, 64)
		length, err2 := strconv.ParseUint(f[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("dmsetup table line %d: %w", n+1, err)
		}
		seg := Segment{Start: start, Length: length, Target: f[2]}
		if len(f) == 4 {
			seg.Args = f[3]
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, Table{Name: name})
		}
		out[len(out)-1].Segments = append(out[len(out)-1].Segments, seg)
	}
	return out, nil
}

// Device is one line of Info.
type Device struct {
	Name string
	UUID string // "LVM-<vg uuid><lv uuid>[-layer]" for LVM devices
	Attr string // e.g. "L--w": (L)ive, (I)nactive, (s)uspended, (r)ead-only, read-(w)rite
	Open int    // open count: >0 means something (qemu, a filesystem) holds it
	// VG, LV and Layer are set for LVM devices (UUID prefix "LVM-"),
	// decoded from Name.
	VG, LV, Layer string
}

// infoFields is the -o list Info asks for; name goes last so that a name
// holding the separator still parses (lvm2 libdm/dm-tools/dmsetup.c
// field names "open", "attr", "uuid", "name").
const infoFields = "open,attr,uuid,name"

// ParseInfo parses `dmsetup info -c --noheadings --separator : -o open,attr,uuid,name`.
func ParseInfo(b []byte) ([]Device, error) {
	var out []Device
	for n, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, " \r")
		if l == "" || l == "No devices found" {
			continue
		}
		f := strings.SplitN(l, ":", 4)
		if len(f) != 4 || f[3] == "" {
			return nil, fmt.Errorf("dmsetup info line %d: want open:attr:uuid:name, got %q", n+1, l)
		}
		open, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("dmsetup info line %d: open count %q", n+1, f[0])
		}
		d := Device{Open: open, Attr: f[1], UUID: f[2], Name: f[3]}
		if strings.HasPrefix(d.UUID, "LVM-") {
			d.VG, d.LV, d.Layer, _ = SplitLVMName(d.Name)
		}
		out = append(out, d)
	}
	return out, nil
}

// lockLV is lvmlockd's internal LV holding the sanlock leases: no guest
// uses it, and error-tabling it (as the lvmlockd(8) example script does)
// makes the later `vgchange --lock-start` fail.
const lockLV = "lvmlock"

// UserLV decodes a dm name that is an LV as its users see it: not a layer
// of one ("-real", "-cow") and not lvmlockd's lease LV. These are what a
// fence error-tables and what a host has active.
func UserLV(name string) (vg, lv string, ok bool) {
	vg, lv, layer, ok := SplitLVMName(name)
	if !ok || layer != "" || lv == lockLV {
		return "", "", false
	}
	return vg, lv, true
}

// LVUUID takes the LV's uuid from an LVM dm uuid ("LVM-" + VG uuid + LV
// uuid, 32 characters each without dashes), dashed as LVM prints it.
func LVUUID(dmUUID string) (string, bool) {
	u, ok := strings.CutPrefix(dmUUID, "LVM-")
	if !ok || len(u) != 64 {
		return "", false
	}
	// LVM prints uuids in groups of 6-4-4-4-4-4-6.
	u = u[32:]
	return strings.Join([]string{u[:6], u[6:10], u[10:14], u[14:18], u[18:22], u[22:26], u[26:]}, "-"), true
}

// SplitLVMName decodes an LVM dm name: VG and LV joined by '-', each with
// its own '-' doubled, then an optional "-layer" suffix (e.g. "-real",
// "-cow", "-tpool"). ok is false when the name is not in that form.
func SplitLVMName(name string) (vg, lv, layer string, ok bool) {
	parts := splitSingleDash(name)
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", false
	}
	vg, lv = unescape(parts[0]), unescape(parts[1])
	if len(parts) == 3 {
		if parts[2] == "" {
			return "", "", "", false
		}
		layer = unescape(parts[2])
	}
	return vg, lv, layer, true
}

// LVMName encodes VG and LV the way LVM names their dm device.
func LVMName(vg, lv string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}

// splitSingleDash splits at every '-' that is not part of a "--" pair,
// keeping the escaped pairs inside the parts.
func splitSingleDash(s string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '-' {
			i++ // an escaped '-'
			continue
		}
		parts = append(parts, s[start:i])
		start = i + 1
	}
	return append(parts, s[start:])
}

func unescape(s string) string { return strings.ReplaceAll(s, "--", "-") }

// Client runs dmsetup.
type Client struct {
	r       run.Runner
	timeout time.Duration
}

// New returns a Client; timeout bounds each command.
func New(r run.Runner, timeout time.Duration) *Client { return &Client{r: r, timeout: timeout} }

// Tables runs `dmsetup table`.
func (c *Client) Tables(ctx context.Context) ([]Table, error) {
	out, err := c.dmsetup(ctx, "table")
	if err != nil {
		return nil, err
	}
	return ParseTables(out)
}

// Info runs `dmsetup info -c --noheadings --separator : -o open,attr,uuid,name`.
func (c *Client) Info(ctx context.Context) ([]Device, error) {
	out, err := c.dmsetup(ctx, "info", "-c", "--noheadings", "--separator", ":", "-o", infoFields)
	if err != nil {
		return nil, err
	}
	return ParseInfo(out)
}

// WipeTables runs `dmsetup --noudevsync wipe_table NAME...`: each device's
// table becomes the error target, so every further I/O fails at once even
// while the device stays open (qemu sees EIO). One process for all devices,
// without waiting for udev after each: the fence wipes a whole VG inside
// sanlock's grace, and a process plus a udev round-trip per LV did not fit
// with 60 LVs on a lab guest. dmsetup goes through the names in order and
// stops at the first it cannot wipe. On a multipath LUN that queues I/O,
// turn queueing off first or this blocks.
func (c *Client) WipeTables(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "no dm device to wipe")
	}
	for _, name := range names {
		if name == "" || name[0] == '-' || strings.ContainsAny(name, "/ \t\n") {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid dm device name %q", name)
		}
	}
	_, err := c.dmsetup(ctx, append([]string{"--noudevsync", "wipe_table"}, names...)...)
	var rerr *run.Error
	if len(names) == 1 && errors.As(err, &rerr) && (strings.Contains(rerr.Stderr, "Device does not exist") || strings.Contains(rerr.Stderr, "No such device")) {
		return errdefs.Wrap(errdefs.ErrVolumeNotFound, err, fmt.Sprintf("dm device %s does not exist", names[0]))
	}
	return err
}

// Remove runs `dmsetup remove NAME`: for a device LVM no longer knows (its LV
// was removed by another host while this one was fenced), the only way to
// take it away. An open device is refused (VolumeInUse).
func (c *Client) Remove(ctx context.Context, name string) error {
	if name == "" || name[0] == '-' || strings.ContainsAny(name, "/ \t\n") {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid dm device name %q", name)
	}
	_, err := c.dmsetup(ctx, "remove", name)
	var rerr *run.Error
	switch {
	case errors.As(err, &rerr) && strings.Contains(rerr.Stderr, "Device or resource busy"):
		return errdefs.Wrap(errdefs.ErrVolumeInUse, err, fmt.Sprintf("dm device %s is open", name))
	case errors.As(err, &rerr) && strings.Contains(rerr.Stderr, "No such device"):
		return nil // gone already
	}
	return err
}

func (c *Client) dmsetup(ctx context.Context, args ...string) ([]byte, error) {
	res, err := c.r.Run(ctx, run.Cmd{Argv: append([]string{"dmsetup"}, args...), Timeout: c.timeout})
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}
