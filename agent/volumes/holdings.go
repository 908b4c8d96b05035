package volumes

import (
	"context"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/sanlock"
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
	// Since is when this agent took the lock in this mode; nil when it
	// did not take it (another tool did, or before the agent kept it).
	Since *time.Time `json:"since,omitempty"`
}

// Holdings lists vg's LVs locked by lvmlockd on this host or active here,
// lock mode from lvmlockd and since when from held.json. A COW snapshot
// is active with its origin under the origin's lock, so it is not listed
// on its own.
func (s *Service) Holdings(ctx context.Context, vg string) ([]Holding, error) {
	if !s.allowed(vg) {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "volume group %q is not managed by this agent", vg)
	}
	lvs, err := s.lvm.LVs(ctx, vg)
	if err != nil {
		return nil, err
	}
	info, err := s.locks.Info(ctx)
	if err != nil {
		return nil, err
	}
	var modes map[string]sanlock.LockMode
	if v := info.VG(vg); v != nil {
		modes = v.LVs
	}
	out := []Holding{}
	for _, lv := range lvs {
		h := Holding{VG: vg, LV: lv.Name, UUID: lv.UUID, Active: lv.ActiveLocally}
		switch modes[lv.UUID] {
		case sanlock.ModeEx:
			h.Mode = Exclusive
		case sanlock.ModeSh:
			h.Mode = Shared
		}
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
