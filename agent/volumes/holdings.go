package volumes

import (
	"context"
	"time"
)

// Holding is an LV this host holds a lock on or has active, as the
// cluster view shows it. Mode "" with Active is an LV active here without
// its lock: nothing stops another host from taking and writing it.
type Holding struct {
	VG     string        `json:"volume_group"`
	LV     string        `json:"volume_name"`
	UUID   string        `json:"uuid"`
	Mode   RequestedMode `json:"mode"`
	Active bool          `json:"active"` // the device is active here (lvs)
	// Offline: the device's table is the error target, as a fence leaves
	// it: it fails all I/O, so no lock is needed to keep it from writing.
	Offline bool `json:"offline"`
	// Since is when this agent took the lock in this mode; nil when it
	// did not take it (another tool did, or before the agent kept it).
	Since *time.Time `json:"since,omitempty"`
}

// Holdings lists vg's LVs locked by lvmlockd on this host or active here,
// lock mode from lvmlockd and since when from held.json. A COW snapshot
// is active with its origin under the origin's lock, so it is not listed
// on its own.
func (s *Service) Holdings(ctx context.Context, vg string) ([]Holding, error) {
	lvs, modes, err := s.lvsAndLocks(ctx, vg)
	if err != nil {
		return nil, err
	}
	out := []Holding{}
	for _, lv := range lvs {
		h := Holding{VG: vg, LV: lv.Name, UUID: lv.UUID, Mode: modes[lv.UUID], Active: lv.ActiveLocally}
		if h.Mode == "" && (!h.Active || lv.Hidden || lv.IsSnapshot()) {
			continue
		}
		if rec, ok := s.held.Get(vg, lv.Name); ok && h.Mode != "" && rec.Mode == h.Mode.held() && !rec.Since.IsZero() {
			since := rec.Since
			h.Since = &since
		}
		out = append(out, h)
	}
	return out, nil
}
