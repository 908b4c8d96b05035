package hostcfg

import (
	"fmt"
	"regexp"
	"strconv"
)

// LVMVersion is lvm2's release, e.g. 2.03.16.
type LVMVersion struct{ Major, Minor, Patch int }

func (v LVMVersion) String() string { return fmt.Sprintf("%d.%02d.%02d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is o or newer.
func (v LVMVersion) AtLeast(o LVMVersion) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

// KillCommandSince is the first lvm2 with global/lvmlockctl_kill_command.
var KillCommandSince = LVMVersion{2, 3, 12}

var lvmVersionLine = regexp.MustCompile(`(?m)^\s*LVM version:\s*(\d+)\.(\d+)\.(\d+)`)

// ParseLVMVersion reads `lvm version` output.
func ParseLVMVersion(out []byte) (LVMVersion, error) {
	m := lvmVersionLine.FindSubmatch(out)
	if m == nil {
		return LVMVersion{}, fmt.Errorf("no \"LVM version:\" line in lvm version output")
	}
	var v LVMVersion
	v.Major, _ = strconv.Atoi(string(m[1]))
	v.Minor, _ = strconv.Atoi(string(m[2]))
	v.Patch, _ = strconv.Atoi(string(m[3]))
	return v, nil
}
