package lvm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
)

// maxNameLen is lvm2's NAME_LEN (128) minus the terminating NUL: _validate_name
// in lib/misc/lvm-string.c counts the NUL and refuses len > NAME_LEN.
const maxNameLen = 127

// LV names lvm2 refuses because internal sub-LVs use them
// (lib/misc/lvm-string.c, apply_lvname_restrictions; identical lists in
// v2_03_16 and v2_03_39).
var (
	reservedLVPrefixes   = []string{"pvmove", "snapshot"}
	reservedLVSubstrings = []string{
		"_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog",
		"_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig",
		"_pmspare", "_vorigin",
	}
)

// sanlockLVName is the hidden LV holding the VG's sanlock leases. lvm2 itself
// would accept the name, but the agent must never create, extend or remove it.
const sanlockLVName = "lvmlock"

// validateName applies lvm2's _validate_name: non-empty, at most 127 bytes of
// [a-zA-Z0-9+_.-], no leading '-' (the VG-LV separator in dm names), not "."
// or "..".
func validateName(kind, name string) error {
	switch {
	case name == "":
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s name is empty", kind)
	case name[0] == '-':
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s name %q starts with '-'", kind, name)
	case name == "." || name == "..":
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s name %q is reserved", kind, name)
	case len(name) > maxNameLen:
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s name is %d bytes long, the limit is %d", kind, len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s name %q contains %q; allowed are a-z A-Z 0-9 + _ . -", kind, name, name[i])
		}
	}
	return nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '_' || c == '.' || c == '-'
}

// ValidateVGName reports whether lvm2 would accept name as a VG name.
func ValidateVGName(name string) error { return validateName("VG", name) }

// ValidateLVName reports whether lvm2 would accept name for a new LV (the
// charset and length rules plus the reserved prefixes and substrings), and
// refuses the sanlock lease LV.
func ValidateLVName(name string) error {
	if err := validateName("LV", name); err != nil {
		return err
	}
	for _, p := range reservedLVPrefixes {
		if strings.HasPrefix(name, p) {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "LV name %q: names starting %q are reserved by LVM", name, p)
		}
	}
	for _, s := range reservedLVSubstrings {
		if strings.Contains(name, s) {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "LV name %q: names including %q are reserved by LVM", name, s)
		}
	}
	if name == sanlockLVName {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "LV name %q is the VG's sanlock lease LV", name)
	}
	return nil
}

// checkVG validates vg and that it is one of the configured VGs.
func (c *Client) checkVG(vg string) error {
	if err := ValidateVGName(vg); err != nil {
		return err
	}
	if !slices.Contains(c.opts.VolumeGroups, vg) {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "VG %q is not one of the configured volume groups %v", vg, c.opts.VolumeGroups)
	}
	return nil
}

// checkLVs validates vg and every LV name, returning the LVs without
// duplicates in request order.
func (c *Client) checkLVs(vg string, lvs []string) ([]string, error) {
	if err := c.checkVG(vg); err != nil {
		return nil, err
	}
	if len(lvs) == 0 {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "no LV given for VG %s", vg)
	}
	unique := make([]string, 0, len(lvs))
	for _, lv := range lvs {
		if err := ValidateLVName(lv); err != nil {
			return nil, err
		}
		if !slices.Contains(unique, lv) {
			unique = append(unique, lv)
		}
	}
	return unique, nil
}

func fullName(vg, lv string) string { return fmt.Sprintf("%s/%s", vg, lv) }
