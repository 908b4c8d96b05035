package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aos-agent/aos-agent/sanlock"
)

// ErrRejoinUnsafe: the dropped lockspace is not started again because an LV
// of the VG is still active, or locked, on this host: starting the
// lockspace would not lock it, and only an operator can tell whether it was
// written without its lock meanwhile.
var ErrRejoinUnsafe = errors.New("lockspace not rejoined")

// Rejoin starts vg's lockspace again after sanlock dropped it under
// lvmlockd. When a lease fails while this host holds no LV lock in the
// lockspace, sanlock runs no killpath (it only kills clients holding a
// resource there), so nothing is fenced and no journal is written; it
// drops its lockspace, and lvmlockd keeps one that can lock nothing, which
// `vgchange --lock-start` leaves as it is (lvmlockd answers EEXIST, lvm2
// exits 0). Rejoin acts only while that is the state: no fence journal,
// the lockspace in lvmlockd (not killed) and not in sanlock, storage back,
// and no LV of vg active or locked here; or while RejoinPending. It reports
// whether it rejoined.
func Rejoin(ctx context.Context, d Deps, vg string) (bool, error) {
	release, err := lockRecovery(d.StateDir, vg)
	if err != nil {
		return false, err
	}
	defer release()
	if _, fenced, err := readAfterFence(ctx, d, vg); err != nil {
		return false, err
	} else if fenced {
		return false, nil // Recover's job
	}
	f := newFencer(d, vg)
	st, err := sanlock.New(d.Runner, f.stepTimeout).Status(ctx)
	if err != nil {
		return false, fmt.Errorf("sanlock client status: %w", err)
	}
	pending := RejoinPending(d, vg)
	if st.Lockspace(sanlock.LockspacePrefix+vg) != nil {
		if pending && lockspaceHealthy(st, vg) {
			return false, ClearRejoinPending(d, vg) // started by someone else
		}
		return false, nil // joined, joining or failed with a fence to come
	}
	lk := sanlock.NewLockCtl(d.Runner, f.stepTimeout)
	dump, err := lk.Dump(ctx)
	if err != nil {
		return false, fmt.Errorf("lvmlockctl --info --dump: %w", err)
	}
	if ls := dump.Lockspace(vg); (ls == nil && !pending) || (ls != nil && ls.KillVG()) {
		return false, nil // never started (lockstart's job), or killed (a fence's)
	}
	if d.MultipathAlias != "" {
		m, err := f.mp.Map(ctx, d.MultipathAlias)
		if err != nil {
			return false, fmt.Errorf("multipath map %s: %w", d.MultipathAlias, err)
		}
		if len(m.ActivePaths()) == 0 {
			return false, fmt.Errorf("%w: %s", ErrPathsDown, d.MultipathAlias)
		}
	}
	tables, err := f.dm.Tables(ctx)
	if err != nil {
		return false, fmt.Errorf("dmsetup table: %w", err)
	}
	if lvs := f.targets(tables); len(lvs) > 0 {
		return false, fmt.Errorf("%w: LV %s/%s is active on this host without a lock (see docs/runbooks/aoslockspacenotjoined.md)", ErrRejoinUnsafe, vg, lvs[0].LV)
	}
	info, err := lk.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("lvmlockctl --info: %w", err)
	}
	if v := info.VG(vg); v != nil {
		for uuid, mode := range v.LVs {
			if mode.Held() {
				return false, fmt.Errorf("%w: lvmlockd still holds LV %s (%s)", ErrRejoinUnsafe, uuid, mode)
			}
		}
	}
	f.logf("lockspace %s%s was dropped by sanlock (its lease failed while no LV lock was held): starting it again", sanlock.LockspacePrefix, vg)
	// Once lvmlockd's lockspace is dropped, a failed start leaves the VG
	// in neither daemon, which reads as never started: the marker keeps
	// the attempt going across agent restarts (not reboots: lockstart's).
	if err := os.WriteFile(rejoinMarker(d, vg), nil, 0o600); err != nil {
		return false, fmt.Errorf("rejoin marker: %w", err)
	}
	if err := startLockspace(ctx, d.Runner, d.lvmClient(vg), f.stepTimeout, vg, f.logf); err != nil {
		return false, err
	}
	return true, ClearRejoinPending(d, vg)
}

// RejoinPending: a Rejoin of vg dropped its lockspace from lvmlockd and
// has not started it again yet.
func RejoinPending(d Deps, vg string) bool {
	_, err := os.Stat(rejoinMarker(d, vg))
	return err == nil
}

// ClearRejoinPending forgets an unfinished Rejoin of vg once its lockspace
// is joined again by other means (lockstart), so that a later stop of it by
// an operator is not taken for one.
func ClearRejoinPending(d Deps, vg string) error {
	if err := os.Remove(rejoinMarker(d, vg)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func rejoinMarker(d Deps, vg string) string {
	dir := d.RuntimeDir
	if dir == "" {
		dir = d.StateDir
	}
	return filepath.Join(dir, "rejoin-"+vg)
}
