package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// PhaseRecovering: Recover has started undoing the fence; a re-run resumes
// from the per-LV outcomes already recorded.
const PhaseRecovering Phase = "recovering"

// Outcome of one fenced LV during recovery, kept in the journal so a re-run
// never deactivates an LV it already re-acquired.
const (
	OutcomeReacquired = "reacquired"
	OutcomeLost       = "lost"        // another host holds it now
	OutcomeGone       = "gone"        // another host deleted it meanwhile
	OutcomeNotHeld    = "deactivated" // no recorded mode: nothing to re-acquire
)

var (
	// ErrPathsDown: the multipath map has no active path; nothing can be
	// re-locked until storage is back.
	ErrPathsDown = errors.New("multipath map has no active path")
	// ErrFenceUnverified: the fence was interrupted and an LV of the VG may
	// still reach the disk; recovering would hide that.
	ErrFenceUnverified = errors.New("interrupted fence not verified")
	// ErrIncomplete: some LV is neither re-acquired nor lost; the journal is
	// kept and a re-run retries.
	ErrIncomplete = errors.New("recovery incomplete")
	// ErrFencedAgain: the VG was fenced again while Recover ran (the lease
	// was lost once more); it stopped before anything irreversible and
	// left the new fence's journal for the next run.
	ErrFencedAgain = errors.New("fenced again during recovery")
	// ErrNotLocked: right before making an LV live or resuming its VM,
	// the lockspace or the LV's lock was not what recovery had re-acquired.
	ErrNotLocked = errors.New("lock not held")
)

// recoverFenceWait bounds recovery's wait for the fence lock, which a
// running fence holds for all of its steps.
const recoverFenceWait = 2 * time.Minute

// lockspaceJoinWait bounds the wait for sanlock to show the lockspace joined
// after vgchange --lock-start (which normally returns once it is).
const lockspaceJoinWait = 3 * time.Minute

// Report is what Recover did.
type Report struct {
	VG         string
	Reacquired []FencedLV      // re-locked and active again in their recorded mode
	Lost       []FencedLV      // taken by another host: their VMs must stay paused or stopped
	Gone       []FencedLV      // deleted by another host meanwhile: likewise
	NotHeld    []FencedLV      // deactivated only (the agent never held them)
	Pending    []FencedLV      // not finished; Error says why
	Domains    []DomainOutcome // what became of the VMs using the fenced LVs
	Done       bool            // journal removed
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VG %s: ", r.VG)
	if r.Done {
		b.WriteString("recovered, journal removed\n")
	} else {
		b.WriteString("recovery NOT finished, journal kept (re-run to retry)\n")
	}
	for _, lv := range r.Reacquired {
		fmt.Fprintf(&b, "  re-acquired %s (%s)\n", lv.LV, lv.Mode)
		switch {
		case lv.InUse && lv.Stale != "":
			fmt.Fprintf(&b, "    STALE, kept on the error table: %s; destroy its VM here, then `lvchange --refresh %s/%s` before starting it\n", lv.Stale, r.VG, lv.LV)
		case lv.InUse && lv.Refreshed:
			b.WriteString("    open by its VM through the outage: table reloaded\n")
		case lv.InUse:
			fmt.Fprintf(&b, "    still error-tabled (open by its VM): `lvchange --refresh %s/%s`\n", r.VG, lv.LV)
		}
	}
	for _, d := range r.Domains {
		fmt.Fprintf(&b, "  domain %s (%v, was %s): %s", d.Name, d.LVs, d.State, d.Outcome)
		if d.Why != "" {
			fmt.Fprintf(&b, ": %s", d.Why)
		}
		b.WriteString("\n")
	}
	for _, lv := range r.Lost {
		fmt.Fprintf(&b, "  LOST %s: held by another host; do not resume or restart the VM using it here\n", lv.LV)
	}
	for _, lv := range r.Gone {
		fmt.Fprintf(&b, "  GONE %s: deleted by another host during the outage; do not resume or restart the VM using it here\n", lv.LV)
	}
	for _, lv := range r.NotHeld {
		fmt.Fprintf(&b, "  deactivated %s (not held by the agent)\n", lv.LV)
	}
	for _, lv := range r.Pending {
		fmt.Fprintf(&b, "  pending %s: %s\n", lv.LV, lv.Error)
	}
	return b.String()
}

// Recover undoes the fence of vg once its storage is back, in the steps of
// the runbook (docs/runbooks/aoslockspacelost.md). Each step is recorded in
// the journal before the next, so a crash and a re-run converge; a new
// fence meanwhile stops it (ErrFencedAgain). Without a journal there is
// nothing to do.
func Recover(ctx context.Context, d Deps, vg string) (*Report, error) {
	if vg == "" {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "recover: empty VG name")
	}
	rep := &Report{VG: vg}
	release, err := lockRecovery(d.StateDir, vg)
	if err != nil {
		return rep, err
	}
	defer release()
	j, ok, err := readAfterFence(ctx, d, vg)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Done = true
		return rep, nil
	}
	f := newFencer(d, vg)
	f.j = j
	f.lv = d.lvmClient(vg)
	if f.held == nil {
		return rep, fmt.Errorf("held LV record unreadable: cannot record what is re-acquired")
	}
	for _, step := range []func(context.Context) error{
		f.verifyInterruptedFence, // 1. an interrupted fence: nothing may still be live
		f.requirePaths,           // 2. storage back
		f.restoreQueueing,        // 3. multipath queues again
		f.deactivateFenced,       // 4. error-tabled LVs not in use go away
		f.restartLockspace,       // 5. drop the killed lockspace, join it again
		f.reacquireAll,           // 6. each LV in its recorded mode, or LOST
		f.bringBackInUse,         // 7. reload tables, resume the VMs it is safe to resume
		f.removeJournal,          // 8. done
	} {
		if err := step(ctx); err != nil {
			return f.report(rep, err)
		}
	}
	rep.Done = true
	f.logf("recovery of VG %s done", vg)
	return f.report(rep, nil)
}

// verifyInterruptedFence: a fence that did not finish may have a short LV
// list and an LV still live; only a fresh look at every table clears it.
func (f *fencer) verifyInterruptedFence(ctx context.Context) error {
	if f.j.Phase != PhaseFencing && f.j.Phase != PhaseFenceFailed {
		return nil
	}
	if err := f.verify(ctx); err != nil {
		if perr := f.persist(ctx); perr != nil {
			err = errors.Join(err, perr)
		}
		return fmt.Errorf("%w: %w", ErrFenceUnverified, err)
	}
	return nil
}

// requirePaths: nothing can be re-locked until the LUN's map has an active
// path again. Then recovery has begun (PhaseRecovering).
func (f *fencer) requirePaths(ctx context.Context) error {
	if alias := firstNonEmpty(f.j.FailIfNoPathMap, f.d.MultipathAlias); alias != "" {
		m, err := f.mp.Map(ctx, alias)
		if err != nil {
			return fmt.Errorf("multipath map %s: %w", alias, err)
		}
		if len(m.ActivePaths()) == 0 {
			return fmt.Errorf("%w: %s", ErrPathsDown, alias)
		}
	}
	f.j.Phase = PhaseRecovering
	return f.persist(ctx)
}

// restoreQueueing undoes the fence's disablequeueing on the map it named.
func (f *fencer) restoreQueueing(ctx context.Context) error {
	if !f.j.QueueingDisabled {
		return nil
	}
	step := queueingStep("restorequeueing", f.j.QueueingMap)
	if err := f.mp.RestoreQueueing(ctx, f.j.QueueingMap); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	f.logf("%s: ok", step)
	f.j.QueueingDisabled = false
	return f.persist(ctx)
}

// deactivateFenced removes the error-tabled devices nothing holds open
// ("Reading VG vol without a lock" is expected with the lockspace dead).
// lvm's exit status mixes a device it could not remove with a lock it
// could not release, so the dm tables read afterwards tell which are gone.
func (f *fencer) deactivateFenced(ctx context.Context) error {
	names := lvNames(f.pending())
	if len(names) == 0 {
		return nil
	}
	if _, err := f.lv.Deactivate(ctx, f.vg, names...); err != nil {
		f.logf("lvchange -an %v: %v", names, err)
	}
	err := f.checkDeactivated(ctx)
	if perr := f.persist(ctx); err == nil {
		err = perr
	}
	return err
}

// reacquireAll re-locks the pending LVs, exclusive ones first, each in its
// recorded mode; an LV the agent never held is only settled.
func (f *fencer) reacquireAll(ctx context.Context) error {
	for _, mode := range []state.HeldMode{state.Exclusive, state.Shared} {
		f.reacquire(ctx, mode)
	}
	for i := range f.j.LVs {
		if f.j.LVs[i].Mode == "" && f.j.LVs[i].Outcome == "" {
			f.j.LVs[i].Outcome = OutcomeNotHeld
		}
	}
	if err := f.persist(ctx); err != nil {
		return err
	}
	if len(f.pending()) > 0 {
		return ErrIncomplete
	}
	return nil
}

// bringBackInUse reloads the tables the VMs kept open and settles their
// domains; a new fence stops it at once.
func (f *fencer) bringBackInUse(ctx context.Context) error {
	err := f.refreshInUse(ctx)
	if !errors.Is(err, ErrFencedAgain) {
		err = errors.Join(err, f.settleDomains(ctx))
	}
	if errors.Is(err, ErrFencedAgain) {
		return err
	}
	if perr := f.persist(ctx); perr != nil {
		return perr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	return nil
}

// lvmClient runs recovery's lvm commands on vg alone.
func (d Deps) lvmClient(vg string) *lvm.Client {
	return lvm.New(d.Runner, lvm.Options{VolumeGroups: []string{vg}, LockStartTimeout: d.LockStartTimeout})
}

// removeJournal ends the recovery, unless a new fence wrote its own journal.
func (f *fencer) removeJournal(ctx context.Context) error {
	return f.guarded(ctx, func() error { return removeJournal(f.d.journalDirs(), f.vg) })
}

// restartLockspace drops the killed lockspace and joins it again, unless
// sanlock already shows it joined (a re-run after this step): dropping a
// live lockspace would release the LV locks re-acquired since.
func (f *fencer) restartLockspace(ctx context.Context) error {
	sl := sanlock.New(f.d.Runner, f.stepTimeout)
	if joined, err := lockspaceJoined(ctx, sl, f.vg); err != nil {
		return fmt.Errorf("sanlock client status: %w", err)
	} else if joined {
		f.logf("lockspace %s%s already joined", sanlock.LockspacePrefix, f.vg)
		return nil
	}
	// Harmless when lvmlockctl already dropped it after the kill hook.
	return startLockspace(ctx, f.d.Runner, f.lv, f.stepTimeout, f.vg, f.logf)
}

// startLockspace drops what lvmlockd keeps of vg's lockspace, starts it
// again and waits until sanlock shows it joined.
func startLockspace(ctx context.Context, r run.Runner, lv *lvm.Client, timeout time.Duration, vg string, logf func(string, ...any)) error {
	if err := sanlock.NewLockCtl(r, timeout).Drop(ctx, vg); err != nil {
		return fmt.Errorf("lvmlockctl --drop %s: %w", vg, err)
	}
	if err := lv.LockStart(ctx, vg); err != nil {
		return fmt.Errorf("vgchange --lock-start %s: %w", vg, err)
	}
	sl := sanlock.New(r, timeout)
	deadline := time.Now().Add(lockspaceJoinWait)
	for {
		st, err := sl.Status(ctx)
		if err != nil {
			return fmt.Errorf("sanlock client status: %w", err)
		}
		if lockspaceHealthy(st, vg) {
			logf("lockspace %s%s joined", sanlock.LockspacePrefix, vg)
			return nil
		}
		if ls := st.Lockspace(sanlock.LockspacePrefix + vg); ls == nil || ls.Fields.Bool("space_dead") || ls.Fields.Bool("renew_fail") {
			// Gone or dead again (the lease lost once more, a new fence):
			// waiting will not join it; a later run starts from the new
			// journal.
			return fmt.Errorf("lockspace %s%s lost again right after lock start", sanlock.LockspacePrefix, vg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lockspace %s%s not joined after %v", sanlock.LockspacePrefix, vg, lockspaceJoinWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func lockspaceJoined(ctx context.Context, sl *sanlock.Client, vg string) (bool, error) {
	st, err := sl.Status(ctx)
	if err != nil {
		return false, err
	}
	return lockspaceHealthy(st, vg), nil
}

// lockspaceHealthy: a lockspace whose lease failed stays listed until
// dropped, so only one that is neither being added nor dead counts.
func lockspaceHealthy(st *sanlock.Status, vg string) bool {
	ls := st.Lockspace(sanlock.LockspacePrefix + vg)
	return ls != nil && ls.Pending == "" && !ls.Fields.Bool("space_dead") && !ls.Fields.Bool("renew_fail")
}

// reacquire activates the pending LVs recorded in mode with one lvchange.
// An LV another host locked meanwhile is lost to this host: it leaves
// held.json so nothing here activates it again.
func (f *fencer) reacquire(ctx context.Context, mode state.HeldMode) {
	var todo []*FencedLV
	for _, p := range f.pending() {
		if p.Mode == mode {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		return
	}
	lvMode := lvm.Exclusive
	if mode == state.Shared {
		lvMode = lvm.Shared
	}
	res, err := f.lv.Activate(ctx, lvMode, f.vg, lvNames(todo)...)
	var activated []*FencedLV
	for _, p := range todo {
		if err == nil || slices.Contains(res.Changed, p.LV) {
			activated = append(activated, p)
		}
	}
	f.checkLeaseVersions(ctx, activated)
	for _, p := range todo {
		perr := res.Failed[p.LV]
		switch {
		case err == nil || slices.Contains(res.Changed, p.LV):
			// Settled only once held.json says so; otherwise a re-run
			// cycles it (-an, then activate again).
			if herr := f.held.Set(state.HeldLV{VG: f.vg, LV: p.LV, UUID: p.UUID, Mode: mode}); herr != nil {
				p.Error = "held.json: " + herr.Error()
				continue
			}
			p.Outcome, p.Error = OutcomeReacquired, ""
			f.logf("re-acquired %s/%s (%s)", f.vg, p.LV, mode)
		case errors.Is(perr, errdefs.ErrVolumeNotFound):
			// Deleted by another host once this one's lease had expired:
			// nothing to re-lock. LVM no longer knows its device here, so
			// only dmsetup can remove it, unless its VM holds it open: then
			// it stays on the error target and the VM stays paused.
			if herr := f.held.Delete(f.vg, p.LV); herr != nil {
				p.Error = "held.json: " + herr.Error()
				continue
			}
			if err := f.dm.Remove(ctx, p.Device); err != nil && !errors.Is(err, errdefs.ErrVolumeInUse) {
				p.Error = "dmsetup remove: " + err.Error()
				continue
			}
			p.Outcome, p.Error = OutcomeGone, ""
			f.logf("ERROR: %s/%s was deleted by another host during the outage: not re-acquired; the VM using it must not be resumed here", f.vg, p.LV)
		case errors.Is(perr, errdefs.ErrLockConflict):
			p.Error = perr.Error()
			if herr := f.held.Delete(f.vg, p.LV); herr != nil {
				f.logf("ERROR: %s/%s lost but held.json not updated: %v", f.vg, p.LV, herr)
				continue // retried: the outcome must not be recorded before held.json says so
			}
			p.Outcome = OutcomeLost
			f.logf("ERROR: %s/%s is locked by another host: not re-acquired; the VM using it must stay paused or stopped here", f.vg, p.LV)
		default:
			if perr == nil {
				perr = err
			}
			p.Error = perr.Error()
			f.logf("re-acquiring %s/%s (%s) FAILED: %v", f.vg, p.LV, mode, perr)
		}
	}
}

// persist writes the journal at a phase change. Unlike during the fence, a
// write failure stops recovery: a re-run must not redo a settled step (an
// -an of an LV already re-acquired would drop its lock). A journal a new
// fence wrote is never overwritten.
func (f *fencer) persist(ctx context.Context) error {
	return f.guarded(ctx, func() error {
		f.j.Updated = f.d.Now().UTC()
		if err := saveJournal(f.d.journalDirs(), f.j); err != nil {
			return fmt.Errorf("recovery journal: %w", err)
		}
		return nil
	})
}

// guarded runs step under the fence lock once the journal on disk is still
// the one this recovery started from: a step never races a fence, and
// after a new fence (ErrFencedAgain) none runs.
func (f *fencer) guarded(ctx context.Context, step func() error) error {
	release, err := lockFence(ctx, f.d.lockDir(), f.vg, recoverFenceWait)
	if err != nil {
		return err
	}
	defer release()
	cur, ok, err := findJournal(f.d.journalDirs(), f.vg)
	switch {
	case err != nil:
		return fmt.Errorf("%w: journal unreadable: %w", ErrFencedAgain, err)
	case !ok:
		return fmt.Errorf("%w: the journal of VG %s is gone", ErrFencedAgain, f.vg)
	case !sameFence(cur, f.j):
		return fmt.Errorf("%w: VG %s fence %d (phase %s) replaced fence %d", ErrFencedAgain, f.vg, cur.Generation, cur.Phase, f.j.Generation)
	}
	return step()
}

// readAfterFence reads the journal once no fence is running: a fence holds
// the fence lock until its verdict is written.
func readAfterFence(ctx context.Context, d Deps, vg string) (*Journal, bool, error) {
	release, err := lockFence(ctx, d.lockDir(), vg, recoverFenceWait)
	if err != nil {
		return nil, false, err
	}
	defer release()
	return findJournal(d.journalDirs(), vg)
}

// checkLocked confirms, right before a step that makes an LV live again or
// lets a VM write to it, that the lockspace is joined and healthy and that
// lvmlockd holds each LV's lock in its recorded mode on this host.
func (f *fencer) checkLocked(ctx context.Context, lvs []*FencedLV) error {
	unlocked, err := f.unlocked(ctx, lvs)
	if err != nil {
		return err
	}
	for _, p := range lvs {
		if err := unlocked[p.LV]; err != nil {
			return err
		}
	}
	return nil
}

// unlocked says why, for each of lvs whose lock lvmlockd does not hold here
// in its recorded mode; the error is for the whole VG (lockspace not joined
// and healthy, or unreadable): then none counts as locked.
func (f *fencer) unlocked(ctx context.Context, lvs []*FencedLV) (map[string]error, error) {
	joined, err := lockspaceJoined(ctx, sanlock.New(f.d.Runner, f.stepTimeout), f.vg)
	if err != nil {
		return nil, fmt.Errorf("sanlock client status: %w", err)
	}
	if !joined {
		return nil, fmt.Errorf("%w: lockspace %s%s is not joined and healthy", ErrNotLocked, sanlock.LockspacePrefix, f.vg)
	}
	info, err := sanlock.NewLockCtl(f.d.Runner, f.stepTimeout).Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("lvmlockctl --info: %w", err)
	}
	vi := info.VG(f.vg)
	out := map[string]error{}
	for _, p := range lvs {
		want := sanlock.ModeEx
		if p.Mode == state.Shared {
			want = sanlock.ModeSh
		}
		var got sanlock.LockMode
		if vi != nil && p.UUID != "" {
			got = vi.LVs[p.UUID]
		}
		if got != want {
			out[p.LV] = fmt.Errorf("%w: %s/%s: lvmlockd holds %q here, recovery re-acquired %q", ErrNotLocked, f.vg, p.LV, got, want)
		}
	}
	return out, nil
}

// pending lists the fenced LVs recovery has not settled yet.
func (f *fencer) pending() []*FencedLV {
	var out []*FencedLV
	for i := range f.j.LVs {
		if f.j.LVs[i].Outcome == "" {
			out = append(out, &f.j.LVs[i])
		}
	}
	return out
}

// checkDeactivated reads the dm tables after lvchange -an. A device still
// present is open (a guest paused on the error table keeps its disk open):
// with the error target it does no I/O, so recovery goes on and the lock
// decides whether its VM may ever use it again; with any other table it
// would be live without a lock, and recovery stops.
func (f *fencer) checkDeactivated(ctx context.Context) error {
	tables, err := f.dm.Tables(ctx)
	if err != nil {
		return fmt.Errorf("dmsetup table after lvchange -an: %w", err)
	}
	present := map[string]FencedLV{}
	for _, t := range f.targets(tables) {
		present[t.Device] = t
	}
	var live []string
	for _, p := range f.pending() {
		cur, ok := present[p.Device]
		switch {
		case !ok:
			p.InUse, p.Error = false, ""
		case cur.Fenced:
			p.InUse = true
			f.logf("%s/%s still open (its VM keeps it): stays error-tabled", f.vg, p.LV)
		default:
			p.Error = "active without the error target after lvchange -an"
			live = append(live, p.Device)
		}
	}
	if len(live) > 0 {
		return fmt.Errorf("%w: %v", ErrFenceUnverified, live)
	}
	return nil
}

func (f *fencer) report(rep *Report, err error) (*Report, error) {
	rep.Domains = f.j.Domains
	for _, lv := range f.j.LVs {
		switch lv.Outcome {
		case OutcomeReacquired:
			rep.Reacquired = append(rep.Reacquired, lv)
		case OutcomeLost:
			rep.Lost = append(rep.Lost, lv)
		case OutcomeGone:
			rep.Gone = append(rep.Gone, lv)
		case OutcomeNotHeld:
			rep.NotHeld = append(rep.NotHeld, lv)
		default:
			rep.Pending = append(rep.Pending, lv)
		}
	}
	if err != nil {
		f.logf("recovery of VG %s not finished: %v", f.vg, err)
	}
	return rep, err
}

func lvNames(lvs []*FencedLV) []string {
	out := make([]string, len(lvs))
	for i, lv := range lvs {
		out[i] = lv.LV
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
