package sanlock

import (
	"fmt"
	"strings"
)

// LockMode is an lvmlockd lock mode. Under lvmlockd, `lvs` activation fields
// are not lock-aware, so these modes are the only truth about what this host
// holds.
type LockMode string

const (
	ModeEx LockMode = "ex"
	ModeSh LockMode = "sh"
	ModeUn LockMode = "un"
	ModeNL LockMode = "nl"
)

// Held reports whether the mode is a lock this host holds on the storage.
func (m LockMode) Held() bool { return m == ModeEx || m == ModeSh }

// Info is the formatted `lvmlockctl --info` (lvm2 lvmlockctl.c
// format_info_*), one entry per VG lvmlockd knows.
type Info struct {
	VGs []VGInfo
}

// VGInfo is a "VG <name> lock_type=<t> <uuid>" line and the lines after it.
type VGInfo struct {
	Name      string
	LockType  string
	UUID      string
	Lockspace string // from "LS <lock_type> <ls_name>"
	GL, VG    *Lock  // "LK GL ..." / "LK VG ..."
	LVs       map[string]LockMode
	Waiting   []string // "LW ..." lines: requests waiting for a lock
	Ops       []string // "OP ..." lines
	Other     []string // lines of kinds this version does not know
}

// Lock is an "LK GL|VG <mode> ver <n> [pid <pid> (<name>)]" line.
type Lock struct {
	Mode    LockMode
	Version uint64
	PID     int
}

// VG returns the VG called name, or nil.
func (in *Info) VG(name string) *VGInfo {
	for i := range in.VGs {
		if in.VGs[i].Name == name {
			return &in.VGs[i]
		}
	}
	return nil
}

// ParseInfo parses `lvmlockctl --info`. Lines before the first VG line and
// unknown line kinds are tolerated.
func ParseInfo(b []byte) (*Info, error) {
	in := &Info{}
	var vg *VGInfo
	for n, l := range lines(b) {
		words := strings.Fields(l)
		if words[0] == "VG" {
			if len(words) < 2 {
				return nil, fmt.Errorf("lvmlockctl info line %d: VG without a name", n+1)
			}
			v := VGInfo{Name: words[1], LVs: map[string]LockMode{}}
			for _, w := range words[2:] {
				if k, val, ok := strings.Cut(w, "="); ok {
					if k == "lock_type" {
						v.LockType = val
					}
				} else {
					v.UUID = w
				}
			}
			in.VGs = append(in.VGs, v)
			vg = &in.VGs[len(in.VGs)-1]
			continue
		}
		if vg == nil {
			continue
		}
		if err := vg.addLine(words, l); err != nil {
			return nil, fmt.Errorf("lvmlockctl info line %d: %w", n+1, err)
		}
	}
	return in, nil
}

func (vg *VGInfo) addLine(words []string, l string) error {
	switch {
	case words[0] == "LS" && len(words) >= 3:
		vg.Lockspace = words[2]
	case words[0] == "LK" && len(words) >= 3 && words[1] == "LV":
		if len(words) < 4 {
			return fmt.Errorf("LV lock without uuid: %q", l)
		}
		vg.LVs[words[3]] = LockMode(words[2])
	case words[0] == "LK" && len(words) >= 3 && (words[1] == "GL" || words[1] == "VG"):
		lk := &Lock{Mode: LockMode(words[2])}
		for i := 3; i+1 < len(words); i++ {
			var err error
			switch words[i] {
			case "ver":
				lk.Version, err = uintField("ver", words[i+1])
			case "pid":
				lk.PID, err = atoiField("pid", words[i+1])
			}
			if err != nil {
				return err
			}
		}
		if words[1] == "GL" {
			vg.GL = lk
		} else {
			vg.VG = lk
		}
	case words[0] == "LW":
		vg.Waiting = append(vg.Waiting, l)
	case words[0] == "OP":
		vg.Ops = append(vg.Ops, l)
	default:
		vg.Other = append(vg.Other, l)
	}
	return nil
}

// Dump is the raw `lvmlockctl --info --dump` (lvm2 lvmlockd-core.c
// print_lockspace/print_resource/print_lock/print_client): lines of
// key=value tokens, each starting with info=<kind>.
type Dump struct {
	Lockspaces []DumpLockspace
	Clients    []Fields
}

// DumpLockspace is an info=ls line. Its keys changed between lvm2 versions
// (2.03.16 has vg_sysid and drop_vg, later versions drop both and add
// generation, fence_pr, no_timeout), so all of them stay in Fields.
type DumpLockspace struct {
	Fields    Fields
	Resources []DumpResource
}

// DumpResource is an info=r line and the info=lk lines that follow it.
type DumpResource struct {
	Fields Fields
	Locks  []Fields
}

func (ls *DumpLockspace) LSName() string { return ls.Fields["ls_name"] }
func (ls *DumpLockspace) VGName() string { return ls.Fields["vg_name"] }

// KillVG reports kill_vg=1: `lvmlockctl --kill` ran and the VG waits for
// its LVs to be taken offline and `lvmlockctl --drop`.
func (ls *DumpLockspace) KillVG() bool { return ls.Fields.Bool("kill_vg") }

// DropVG reports drop_vg=1 (lvm2 <= 2.03.x only; absent later).
func (ls *DumpLockspace) DropVG() bool { return ls.Fields.Bool("drop_vg") }

// Lockspace returns the info=ls entry for vg, or nil.
func (d *Dump) Lockspace(vg string) *DumpLockspace {
	for i := range d.Lockspaces {
		if d.Lockspaces[i].VGName() == vg {
			return &d.Lockspaces[i]
		}
	}
	return nil
}

// ParseDump parses `lvmlockctl --info --dump`. Lines of unknown kinds, and
// resources or locks with no lockspace above them, are skipped.
func ParseDump(b []byte) (*Dump, error) {
	d := &Dump{}
	for _, l := range lines(b) {
		f := Fields{}
		f.addTokens(l)
		switch f["info"] {
		case "ls":
			d.Lockspaces = append(d.Lockspaces, DumpLockspace{Fields: f})
		case "r":
			if len(d.Lockspaces) > 0 {
				ls := &d.Lockspaces[len(d.Lockspaces)-1]
				ls.Resources = append(ls.Resources, DumpResource{Fields: f})
			}
		case "lk":
			if len(d.Lockspaces) > 0 {
				ls := &d.Lockspaces[len(d.Lockspaces)-1]
				if len(ls.Resources) > 0 {
					r := &ls.Resources[len(ls.Resources)-1]
					r.Locks = append(r.Locks, f)
				}
			}
		case "client":
			d.Clients = append(d.Clients, f)
		}
	}
	return d, nil
}
