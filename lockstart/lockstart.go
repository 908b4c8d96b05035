// Package lockstart brings a host's shared VGs up at boot, in the order
// lvmlockd(8) requires and without fixed sleeps: sanlock and lvmlockd
// running, the multipath map present with an active path, every PV of each
// VG visible; then `vgchange --lock-start`; then the lockspace really joined
// in sanlock (the exit code alone was seen to lie); then only the LVs this
// host held before the reboot are re-activated, each in its recorded mode.
// A bulk `vgchange -ay` would take exclusive locks on every LV of a shared VG.
package lockstart

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/state"
)

// Machine is what lockstart needs from the host; NewMachine implements it
// with host commands.
type Machine interface {
	// SanlockRunning and LvmlockdRunning return nil when the daemon answers.
	SanlockRunning(ctx context.Context) error
	LvmlockdRunning(ctx context.Context) error
	// ActivePaths counts the active paths of the multipath map alias;
	// multipath.ErrMapNotFound when the map does not exist (yet).
	ActivePaths(ctx context.Context, alias string) (int, error)
	// VGComplete returns nil when vg is visible with every PV present,
	// ErrVolumeGroupNotFound while it is not visible at all.
	VGComplete(ctx context.Context, vg string) error
	// LockStart asks lvmlockd to start vg's lockspace without waiting.
	LockStart(ctx context.Context, vg string) error
	// Lockspace reports vg's lockspace in sanlock.
	Lockspace(ctx context.Context, vg string) (LockspaceState, error)
	// Activate activates one LV in the given mode.
	Activate(ctx context.Context, lv state.HeldLV) error
}

// LockspaceState is a VG's lockspace as sanlock shows it.
type LockspaceState int

const (
	LockspaceAbsent  LockspaceState = iota // not in sanlock
	LockspaceJoining                       // "ADD": host_id lease being acquired
	LockspaceJoined
)

// Options configures one run.
type Options struct {
	VolumeGroups   []string
	MultipathAlias string        // empty: no multipath map to wait for
	Timeout        time.Duration // bounds the whole run
	Poll           time.Duration // between checks while waiting
	Held           []state.HeldLV
	// Progress receives a line each time what is being waited for changes.
	Progress func(string)
}

// Result says what was done.
type Result struct {
	Activated []state.HeldLV
	// Conflicts are held LVs another host has locked since: left inactive
	// for the agent to reconcile, not a boot failure.
	Conflicts []state.HeldLV
}

// Run waits for the host, starts every VG's lockspace and re-activates the
// held LVs. The error names exactly what was still missing.
func Run(ctx context.Context, h Machine, o Options) (Result, error) {
	if len(o.VolumeGroups) == 0 {
		return Result{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "no volume group configured")
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	w := waiter{ctx: ctx, poll: o.Poll, progress: o.Progress, timeout: o.Timeout}

	if err := w.until(func() ([]string, error) { return prerequisites(ctx, h, o), nil }); err != nil {
		return Result{}, err
	}
	started := map[string]bool{}
	if err := w.until(func() ([]string, error) { return lockspaces(ctx, h, o.VolumeGroups, started) }); err != nil {
		return Result{}, err
	}
	// The moment locks work: what dependents wait for, and the start of the
	// boot's join → READY → dependents measure.
	o.Progress("lockspaces joined: " + strings.Join(o.VolumeGroups, ", "))
	return activate(ctx, h, o)
}

// prerequisites lists what lock start still waits for, empty when ready.
func prerequisites(ctx context.Context, h Machine, o Options) []string {
	var missing []string
	if err := h.SanlockRunning(ctx); err != nil {
		missing = append(missing, "sanlock not running ("+oneLine(err)+")")
	}
	if err := h.LvmlockdRunning(ctx); err != nil {
		missing = append(missing, "lvmlockd not running ("+oneLine(err)+")")
	}
	if o.MultipathAlias != "" {
		n, err := h.ActivePaths(ctx, o.MultipathAlias)
		switch {
		case err != nil:
			missing = append(missing, "multipath map "+o.MultipathAlias+" ("+oneLine(err)+")")
		case n == 0:
			missing = append(missing, "multipath map "+o.MultipathAlias+" has no active path")
		}
	}
	for _, vg := range o.VolumeGroups {
		if err := h.VGComplete(ctx, vg); err != nil {
			missing = append(missing, "VG "+vg+" ("+oneLine(err)+")")
		}
	}
	return missing
}

// lockspaces issues lock start for each VG whose lockspace is absent and
// lists those not joined yet. Lock start is re-issued while a lockspace
// stays absent: vgchange was seen to return 0 without the lockspace
// starting. A lease that needs repair ends the wait at once.
func lockspaces(ctx context.Context, h Machine, vgs []string, started map[string]bool) ([]string, error) {
	var missing []string
	for _, vg := range vgs {
		ls, err := h.Lockspace(ctx, vg)
		if err != nil {
			missing = append(missing, "lockspace of VG "+vg+" ("+oneLine(err)+")")
			continue
		}
		switch ls {
		case LockspaceJoined:
			continue
		case LockspaceJoining:
			missing = append(missing, "lockspace of VG "+vg+" joining (sanlock ADD; minutes after an unclean shutdown)")
			continue
		}
		err = h.LockStart(ctx, vg)
		switch {
		case errors.Is(err, ErrLeaseNeedsRepair):
			return nil, fmt.Errorf("VG %s: %w", vg, err)
		case errdefs.ClassOf(err) == errdefs.ErrLockStartInProgress:
			missing = append(missing, "lockspace of VG "+vg+" start in progress")
		case err != nil:
			missing = append(missing, "lock start of VG "+vg+" failed ("+oneLine(err)+")")
		case started[vg]:
			missing = append(missing, "lockspace of VG "+vg+" absent from sanlock although lock start succeeded")
		default:
			started[vg] = true
			missing = append(missing, "lockspace of VG "+vg+" starting")
		}
	}
	return missing, nil
}

// activate re-activates the held LVs of the configured VGs in their modes.
func activate(ctx context.Context, h Machine, o Options) (Result, error) {
	configured := map[string]bool{}
	for _, vg := range o.VolumeGroups {
		configured[vg] = true
	}
	var res Result
	var failed []string
	for _, lv := range o.Held {
		if !configured[lv.VG] {
			continue
		}
		err := h.Activate(ctx, lv)
		switch {
		case err == nil:
			res.Activated = append(res.Activated, lv)
			o.Progress(fmt.Sprintf("activated %s/%s (%s)", lv.VG, lv.LV, lv.Mode))
		case errdefs.ClassOf(err) == errdefs.ErrLockConflict:
			res.Conflicts = append(res.Conflicts, lv)
			o.Progress(fmt.Sprintf("not activating %s/%s: locked by another host since (%s)", lv.VG, lv.LV, oneLine(err)))
		default:
			failed = append(failed, fmt.Sprintf("%s/%s (%s): %s", lv.VG, lv.LV, lv.Mode, oneLine(err)))
		}
	}
	if len(failed) > 0 {
		return res, errdefs.Errorf(errdefs.ErrUnknown, "lockspaces started, but re-activating held LVs failed: %s", strings.Join(failed, "; "))
	}
	return res, nil
}

// ErrLeaseNeedsRepair is lvm2's "sanlock lease needs repair": waiting does
// not help, an operator must check the other hosts and repair the lease.
var ErrLeaseNeedsRepair = errors.New("sanlock lease needs repair: check that no other host uses this host_id, then repair the lease (lvmlockd(8), \"repair\"); lockstart will not do it")

type waiter struct {
	ctx      context.Context
	poll     time.Duration
	timeout  time.Duration
	progress func(string)
}

// until calls check until it reports nothing missing, logging each change
// in what is missing, and fails with the last list at the deadline.
func (w waiter) until(check func() ([]string, error)) error {
	var last string
	for {
		missing, err := check()
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			return nil
		}
		if w.ctx.Err() != nil && last != "" {
			// This round's checks were cut short by the deadline; the
			// previous round says what was really missing.
			missing = nil
		}
		now := last
		if missing != nil {
			now = "waiting for: " + strings.Join(missing, "; ")
		}
		if now != last {
			w.progress(now)
			last = now
		}
		t := time.NewTimer(w.poll)
		select {
		case <-w.ctx.Done():
			t.Stop()
			if errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
				return errdefs.Errorf(errdefs.ErrCommandTimeout, "gave up after %s %s", w.timeout, now)
			}
			return w.ctx.Err()
		case <-t.C:
		}
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
