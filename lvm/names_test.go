package lvm

import (
	"errors"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
)

// Cases follow lvm2 lib/misc/lvm-string.c (_validate_name and
// apply_lvname_restrictions, v2_03_16 and v2_03_39).
func TestValidateNames(t *testing.T) {
	valid := []string{"vol", "a", "volume-0b6f3e8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "A+b_c.d-e", ".x", "..x", strings.Repeat("v", 127), "my_pvmove", "thin_tdat"}
	for _, n := range valid {
		if err := ValidateVGName(n); err != nil {
			t.Errorf("VG %q: %v", n, err)
		}
		if err := ValidateLVName(n); err != nil {
			t.Errorf("LV %q: %v", n, err)
		}
	}
	invalidBoth := []string{"", "-vol", ".", "..", strings.Repeat("v", 128), "a/b", "a b", "vol\n", "é", "a*", "a:b", "a\x00"}
	for _, n := range invalidBoth {
		if err := ValidateVGName(n); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("VG %q accepted", n)
		}
		if err := ValidateLVName(n); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("LV %q accepted", n)
		}
	}
	// Reserved for LVs only; a VG may carry these names.
	lvOnly := []string{"snapshot", "snapshot0", "pvmove0", "x_cdata", "x_cmeta", "x_corig", "x_cpool", "x_cvol", "x_wcorig",
		"x_mimage_0", "x_mlog", "x_rimage_1", "x_rmeta_1", "pool_tdata", "pool_tmeta", "x_vdata", "x_imeta", "x_iorig",
		"lvol0_pmspare", "x_vorigin", "lvmlock"}
	for _, n := range lvOnly {
		if err := ValidateLVName(n); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("LV %q accepted", n)
		}
		if err := ValidateVGName(n); err != nil {
			t.Errorf("VG %q: %v", n, err)
		}
	}
}
