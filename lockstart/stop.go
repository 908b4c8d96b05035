package lockstart

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/lvm"
)

// StopResult is what Stop did for one VG.
type StopResult struct {
	VG          string
	Deactivated []string
	LeftOpen    []string // still open (a VM still running): left active, so the lockspace stays
	Stopped     bool     // the lockspace is stopped (or was not started)
	Err         error
}

// Stop is the shutdown counterpart of Run, for the lock-start unit's stop
// (ordered after the workloads' units and before sanlock and lvmlockd): it
// deactivates the LVs of each VG that nothing holds open and stops the VG's
// lockspace. With a lockspace or an LV lock left, sanlock and lvmlockd
// refuse to stop and the host's shutdown waits for their timeouts (seen in
// the lab). held.json is not touched: the next boot re-activates the LVs in
// their modes. An LV still open is never forced; its VG keeps its lockspace.
func Stop(ctx context.Context, lv *lvm.Client, vgs []string, progress func(string)) []StopResult {
	var out []StopResult
	for _, vg := range vgs {
		r := stopVG(ctx, lv, vg)
		switch {
		case r.Err != nil:
			progress(fmt.Sprintf("VG %s: lockspace left started: %v", vg, r.Err))
		case len(r.LeftOpen) > 0:
			progress(fmt.Sprintf("VG %s: deactivated %d LVs; %s still open, lockspace left started", vg, len(r.Deactivated), strings.Join(r.LeftOpen, ", ")))
		default:
			progress(fmt.Sprintf("VG %s: deactivated %d LVs, lockspace stopped", vg, len(r.Deactivated)))
		}
		out = append(out, r)
	}
	return out
}

func stopVG(ctx context.Context, lv *lvm.Client, vg string) StopResult {
	r := StopResult{VG: vg}
	lvs, err := lv.LVs(ctx, vg)
	if errdefs.ClassOf(err) == errdefs.ErrLockspaceNotStarted {
		r.Stopped = true
		return r
	}
	if err != nil {
		r.Err = err
		return r
	}
	var idle []string
	for _, l := range lvs {
		switch {
		case l.Hidden || !l.ActiveLocally:
		case l.DeviceOpen:
			r.LeftOpen = append(r.LeftOpen, l.Name)
		default:
			idle = append(idle, l.Name)
		}
	}
	if len(idle) > 0 {
		res, err := lv.Deactivate(ctx, vg, idle...)
		r.Deactivated = res.Changed
		for name, ferr := range res.Failed {
			if errors.Is(ferr, errdefs.ErrVolumeInUse) {
				r.LeftOpen = append(r.LeftOpen, name) // opened since the listing
				continue
			}
			r.Err = errors.Join(r.Err, fmt.Errorf("lvchange -an %s/%s: %w", vg, name, ferr))
		}
		if err != nil && len(res.Failed) == 0 {
			r.Err = err
		}
	}
	if r.Err != nil || len(r.LeftOpen) > 0 {
		return r
	}
	err = lv.LockStop(ctx, vg)
	if err != nil && errdefs.ClassOf(err) != errdefs.ErrLockspaceNotStarted {
		r.Err = err
		return r
	}
	r.Stopped = true
	return r
}
