package volumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aos-agent/aos-agent/state"
)

// HeldDifference is one way held.json disagreed with lvmlockd when the
// agent reconciled them, and what it did about it. held.json follows the
// lock: it is what the fence journals and recovery re-acquires.
type HeldDifference struct {
	VG string `json:"volume_group"`
	LV string `json:"volume_name"`
	// Kind: "unrecorded" (locked here, not in held.json: a crash between
	// lvchange and the record; now recorded), "lock_gone" (recorded, no
	// lock: a crash between lvchange -an and the record, or the lock was
	// lost or released behind the agent; now forgotten), "mode_differs"
	// (recorded in another mode; now lvmlockd's).
	Kind     string         `json:"kind"`
	Recorded state.HeldMode `json:"recorded"`
	Locked   RequestedMode  `json:"locked"`
	// Active: the LV is active here. With lock_gone it is active without
	// its lock, which the operator must look at (another host may take it).
	Active bool      `json:"active"`
	At     time.Time `json:"at"`
}

func (d HeldDifference) String() string {
	return fmt.Sprintf("%s/%s %s (recorded %q, locked %q, active %v)", d.VG, d.LV, d.Kind, d.Recorded, d.Locked, d.Active)
}

// ReconcileHeld makes held.json agree with the LV locks lvmlockd holds in
// vg and returns the differences it found. Call it only while vg's
// lockspace is joined and no fence journal exists (recovery owns held.json
// then). It may run while requests are served: each LV that differs is
// checked again under its per-LV lock, so a request that changes it
// meanwhile is not undone.
func (s *Service) ReconcileHeld(ctx context.Context, vg string) ([]HeldDifference, error) {
	candidates, err := s.heldDifferences(ctx, vg, nil)
	if err != nil || len(candidates) == 0 {
		return nil, err
	}
	names := make([]string, 0, len(candidates))
	for _, d := range candidates {
		names = append(names, d.LV)
	}
	slices.Sort(names) // one order for every caller taking several LV locks
	for _, lv := range names {
		unlock, err := s.lockLV(ctx, Ref{VG: vg, LV: lv})
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	diffs, err := s.heldDifferences(ctx, vg, names)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, d := range diffs {
		switch d.Kind {
		case "unrecorded", "mode_differs":
			err = s.held.Set(state.HeldLV{VG: vg, LV: d.LV, Mode: d.Locked.held()})
		case "lock_gone":
			err = s.held.Delete(vg, d.LV)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d, err))
			continue
		}
		diffs[i].At = time.Now()
	}
	return diffs, errors.Join(errs...)
}

// heldDifferences compares held.json with lvmlockd for vg, for the LVs in
// only (every LV when nil). LVs a request holds for its own length (the
// transient record) are not the attachments' business.
func (s *Service) heldDifferences(ctx context.Context, vg string, only []string) ([]HeldDifference, error) {
	lvs, modes, err := s.lvsAndLocks(ctx, vg)
	if err != nil {
		return nil, err
	}
	transient := map[string]bool{}
	if t := s.opts.Transient; t != nil {
		for _, r := range t.List() {
			if r.VG == vg {
				transient[r.LV] = true
			}
		}
	}
	var out []HeldDifference
	seen := map[string]bool{}
	for _, lv := range lvs {
		seen[lv.Name] = true
		if (only != nil && !slices.Contains(only, lv.Name)) || transient[lv.Name] {
			continue
		}
		rec, recorded := s.held.Get(vg, lv.Name)
		locked := modes[lv.UUID]
		d := HeldDifference{VG: vg, LV: lv.Name, Recorded: rec.Mode, Locked: locked, Active: lv.ActiveLocally}
		switch {
		case !recorded && locked != "":
			d.Kind = "unrecorded"
		case recorded && locked == "":
			d.Kind = "lock_gone"
		case recorded && rec.Mode != locked.held():
			d.Kind = "mode_differs"
		default:
			continue
		}
		out = append(out, d)
	}
	// A record of an LV that no longer exists (deleted by another host
	// while this agent was down) is a lock gone too.
	for _, rec := range s.held.List() {
		if rec.VG == vg && !seen[rec.LV] && (only == nil || slices.Contains(only, rec.LV)) {
			out = append(out, HeldDifference{VG: vg, LV: rec.LV, Kind: "lock_gone", Recorded: rec.Mode})
		}
	}
	return out, nil
}
