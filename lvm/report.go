package lvm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Report fields. Every name exists in lvm2 2.03.16 lib/report/columns.h. The
// LV lock args field is lv_lockargs there: lvm2 would also accept
// "lv_lock_args" (field names match with underscores ignored) but prints the
// JSON key as lv_lockargs, so the argv uses the canonical id.
const (
	vgFields = "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,lv_count,vg_lock_type,vg_lock_args"
	lvFields = "lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_lockargs,origin,lv_active_locally,lv_active_exclusively,lv_active_remotely,lv_device_open,lv_tags"
)

// VG is one row of the vgs report.
type VG struct {
	Name       string
	UUID       string
	Size       uint64 // bytes
	Free       uint64 // bytes
	ExtentSize uint64 // bytes
	LVCount    int
	LockType   string // "sanlock" for a shared VG, "" for a local one
	LockArgs   string // e.g. "1.0.0:lvmlock"
}

// LV is one row of the lvs report.
//
// ActiveExclusively and ActiveRemotely do not tell the lvmlockd lock mode:
// lvm2 2.03.16 (lib/report/report.c) sets lv_active_exclusively whenever the
// LV is active locally and lv_active_remotely never; a recorded -asy LV shows
// "active exclusively". The lock mode comes from lvmlockctl --info.
type LV struct {
	Name              string // without the brackets lvm2 puts around hidden LVs
	Hidden            bool
	VG                string
	UUID              string
	Size              uint64 // bytes
	Attr              LVAttr
	LockArgs          string // e.g. "1.0.0:70254592", the lease offset
	Origin            string // origin of a snapshot, "" otherwise
	ActiveLocally     bool
	ActiveExclusively bool
	ActiveRemotely    bool
	DeviceOpen        bool
	// Tags are the LV's LVM tags (lvchange --addtag).
	Tags []string
}

type vgRow struct {
	Name       string `json:"vg_name"`
	UUID       string `json:"vg_uuid"`
	Size       string `json:"vg_size"`
	Free       string `json:"vg_free"`
	ExtentSize string `json:"vg_extent_size"`
	LVCount    string `json:"lv_count"`
	LockType   string `json:"vg_lock_type"`
	LockArgs   string `json:"vg_lock_args"`
}

type lvRow struct {
	Name              string `json:"lv_name"`
	VG                string `json:"vg_name"`
	UUID              string `json:"lv_uuid"`
	Size              string `json:"lv_size"`
	Attr              string `json:"lv_attr"`
	LockArgs          string `json:"lv_lockargs"`
	Origin            string `json:"origin"`
	ActiveLocally     string `json:"lv_active_locally"`
	ActiveExclusively string `json:"lv_active_exclusively"`
	ActiveRemotely    string `json:"lv_active_remotely"`
	DeviceOpen        string `json:"lv_device_open"`
	Tags              string `json:"lv_tags"`
}

type reportPart struct {
	VG []vgRow `json:"vg"`
	LV []lvRow `json:"lv"`
}

type report struct {
	Report []reportPart `json:"report"`
}

// parseRows decodes a JSON report and converts each row that rows selects.
func parseRows[R, T any](out []byte, rows func(reportPart) []R, parse func(R) (T, error)) ([]T, error) {
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("lvm JSON report: %w", err)
	}
	var items []T
	for _, part := range r.Report {
		for _, row := range rows(part) {
			item, err := parse(row)
			if err != nil {
				return nil, err
			}
			items = append(items, item)
		}
	}
	return items, nil
}

// ParseVGs parses `vgs --reportformat json --units b --nosuffix` output.
func ParseVGs(out []byte) ([]VG, error) {
	return parseRows(out, func(p reportPart) []vgRow { return p.VG }, vgRow.parse)
}

// ParseLVs parses `lvs --reportformat json --units b --nosuffix` output.
func ParseLVs(out []byte) ([]LV, error) {
	return parseRows(out, func(p reportPart) []lvRow { return p.LV }, lvRow.parse)
}

func (row vgRow) parse() (VG, error) {
	if row.Name == "" {
		return VG{}, fmt.Errorf("vgs report: row without vg_name")
	}
	vg := VG{Name: row.Name, UUID: row.UUID, LockType: row.LockType, LockArgs: row.LockArgs}
	var err error
	if vg.Size, err = parseBytes("vg_size", row.Size); err != nil {
		return VG{}, fmt.Errorf("VG %s: %w", row.Name, err)
	}
	if vg.Free, err = parseBytes("vg_free", row.Free); err != nil {
		return VG{}, fmt.Errorf("VG %s: %w", row.Name, err)
	}
	if vg.ExtentSize, err = parseBytes("vg_extent_size", row.ExtentSize); err != nil {
		return VG{}, fmt.Errorf("VG %s: %w", row.Name, err)
	}
	if vg.LVCount, err = strconv.Atoi(row.LVCount); err != nil || vg.LVCount < 0 {
		return VG{}, fmt.Errorf("VG %s: lv_count %q is not a count", row.Name, row.LVCount)
	}
	return vg, nil
}

func (row lvRow) parse() (LV, error) {
	name, hidden := row.Name, false
	if len(name) > 2 && name[0] == '[' && name[len(name)-1] == ']' {
		name, hidden = name[1:len(name)-1], true
	}
	if name == "" || row.VG == "" {
		return LV{}, fmt.Errorf("lvs report: row without lv_name or vg_name: %q/%q", row.VG, row.Name)
	}
	size, err := parseBytes("lv_size", row.Size)
	if err != nil {
		return LV{}, fmt.Errorf("LV %s/%s: %w", row.VG, name, err)
	}
	attr, err := ParseLVAttr(row.Attr)
	if err != nil {
		return LV{}, fmt.Errorf("LV %s/%s: %w", row.VG, name, err)
	}
	return LV{
		Name: name, Hidden: hidden, VG: row.VG, UUID: row.UUID, Size: size, Attr: attr,
		LockArgs: row.LockArgs, Origin: row.Origin,
		ActiveLocally:     reportBool(row.ActiveLocally),
		ActiveExclusively: reportBool(row.ActiveExclusively),
		ActiveRemotely:    reportBool(row.ActiveRemotely),
		DeviceOpen:        reportBool(row.DeviceOpen),
		Tags:              splitTags(row.Tags),
	}, nil
}

// splitTags reads lv_tags: comma-separated, "" for none.
func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// HasTag reports whether the LV carries tag.
func (lv LV) HasTag(tag string) bool { return slices.Contains(lv.Tags, tag) }

// parseBytes reads a size printed with --units b --nosuffix. A unit suffix
// or a "<" approximation means the command ran without those options, which
// would make every size inexact: refuse it rather than round.
func parseBytes(field, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a byte count (report needs --units b --nosuffix)", field, s)
	}
	return n, nil
}

// reportBool reads a binary report field. Without --binary lvm2 prints the
// field's name when set ("active locally", "open") and "" when not; with
// --binary 1/0, and -1 for "unknown".
func reportBool(s string) bool {
	switch s {
	case "", "0", "-1", "unknown":
		return false
	}
	return true
}

// LVAttr is the decoded 10-character lv_attr field (lvs(8) NOTES, lvm2
// 2.03.16). Each field keeps LVM's letter; '-' means unset.
type LVAttr struct {
	Raw string
	// VolumeType: '-' plain, 'o' origin, 's' snapshot, 'V' thin volume,
	// 't' thin pool, 'r' raid, 'm' mirror, 'C' cache, ... (lvs(8) bit 1).
	VolumeType byte
	// Permissions: 'w' writeable, 'r' read-only, 'R' read-only activation.
	Permissions byte
	// AllocationPolicy: 'a','c','i','l','n'; upper case while locked (pvmove).
	AllocationPolicy byte
	FixedMinor       bool
	// State: 'a' active, 's' suspended, 'h' historical, 'd'/'i' mapped device
	// without/with inactive table, 'I'/'S'/'m'/'M'/'c'/'C' snapshot and pool
	// states, 'X' unknown, '-' inactive.
	State      byte
	DeviceOpen bool
	// TargetType: 'C','m','r','s','t','u','v' or '-'.
	TargetType byte
	Zeroing    bool
	// Health: 'p' partial, 'r' refresh needed, 'm' mismatches, 'w'
	// writemostly, 'X' unknown, 'E','F','D','M' target errors, '-' fine.
	Health         byte
	SkipActivation bool
}

// ParseLVAttr decodes lv_attr. lvm2 has printed 10 characters since 2.02.x;
// longer strings (a future bit) are accepted and the extra bits ignored.
func ParseLVAttr(s string) (LVAttr, error) {
	if len(s) < 10 {
		return LVAttr{}, fmt.Errorf("lv_attr %q is shorter than 10 characters", s)
	}
	return LVAttr{
		Raw:              s,
		VolumeType:       s[0],
		Permissions:      s[1],
		AllocationPolicy: s[2],
		FixedMinor:       s[3] == 'm',
		State:            s[4],
		DeviceOpen:       s[5] == 'o',
		TargetType:       s[6],
		Zeroing:          s[7] == 'z',
		Health:           s[8],
		SkipActivation:   s[9] == 'k',
	}, nil
}

// Active reports whether the LV has a live device-mapper table here
// (active, or active and suspended).
func (a LVAttr) Active() bool { return a.State == 'a' || a.Suspended() }

// Suspended reports a suspended device: I/O to it blocks.
func (a LVAttr) Suspended() bool { return strings.IndexByte("sSMC", a.State) >= 0 }

// Writable reports read-write permission.
func (a LVAttr) Writable() bool { return a.Permissions == 'w' }

// Partial reports that a PV under the LV is missing.
func (a LVAttr) Partial() bool { return a.Health == 'p' }

// IsSnapshot reports a thick COW snapshot ('s', or 'S' when invalid).
func (l LV) IsSnapshot() bool {
	return l.Origin != "" || strings.IndexByte("sS", l.Attr.VolumeType) >= 0
}

// IsOrigin reports an LV that has COW snapshots ('o', or 'O' while a
// merge is pending).
func (l LV) IsOrigin() bool { return strings.IndexByte("oO", l.Attr.VolumeType) >= 0 }
