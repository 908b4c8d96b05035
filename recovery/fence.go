// Package recovery takes a VG's LVs offline when this host loses its sanlock
// lease (Fence, run by lvmlockctl_kill_command) and records what it did in a
// journal, so a later recovery can undo exactly that.
//
// Fencing must finish within sanlock's grace (~40 s at io_timeout 10) and its
// exit status is the whole contract: success tells lvmlockctl every LV of the
// VG is offline, it then drops the VG's locks and disarms the watchdog, and
// other hosts take those LVs once this host's lease expires (the release
// cannot reach the dead storage; ~60 s after renewal failed, measured in the
// lab: lease-loss-fenced). Claiming success while an LV still
// reaches the disk is a split brain; failing merely lets the watchdog reset
// the host. Every doubt therefore resolves to failure.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// DefaultStepTimeout bounds each command. The fence's worst case,
// fenceSteps of it (the fence lock's wait; disable queueing,
// fail_if_no_path, list, the wipes' shared budget counting as three,
// verify; the two local lease-version queries at half of it), must fit in
// sanlock's ~40 s grace.
const DefaultStepTimeout = 4 * time.Second

// wipeBudgetSteps is how many step timeouts all wipes share: on dead
// storage a wipe could hang for its whole timeout.
const wipeBudgetSteps = 3

// Deps is what Fence needs from the host.
type Deps struct {
	Runner   run.Runner
	StateDir string // journal and held.json live here
	// RuntimeDir takes the journal when StateDir cannot be written (see
	// journalDirs); "" for none.
	RuntimeDir     string
	MultipathAlias string // map that gets fail_if_no_path; "" skips that step
	StepTimeout    time.Duration
	// LockStartTimeout bounds vgchange --lock-start ([lvm]
	// lock_start_timeout); 0 is lvm.DefaultLockStartTimeout.
	LockStartTimeout time.Duration
	Now              func() time.Time
	// Log receives one line per step (the kill hook sends it to stderr,
	// which journald keeps); nil discards.
	Log func(format string, args ...any)
	// BootID of the running boot, recorded in the journal; "" reads it
	// from the kernel.
	BootID string
	// LibvirtURI: Recover resumes the domains of this hypervisor that the
	// outage paused, once their LVs are back; "" leaves domains alone.
	LibvirtURI string
}

// ErrNotFenced is returned when at least one top-level LV of the VG may
// still do I/O (or Fence could not tell).
var ErrNotFenced = errors.New("not every LV of the VG is fenced")

// ErrJournalNotWritten: the fence's verdict could be written nowhere. The
// agent would never learn of the fence (no recovery, VMs paused for good,
// mutations served as usual), so the fence fails and the watchdog resets
// the host, which fences too and leaves nothing half-known.
var ErrJournalNotWritten = errors.New("recovery journal could not be written")

// Fence takes every top-level LV of vg offline by replacing its dm table
// with the error target, after making queued multipath I/O fail so the
// wipes cannot block. A step that fails or times out does not stop the
// following ones. The returned journal (also written under StateDir) says
// what was fenced; the error is nil only when a final `dmsetup table`
// shows every top-level LV of vg with the error target.
func Fence(ctx context.Context, d Deps, vg string) (*Journal, error) {
	if vg == "" {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "fence: empty VG name")
	}
	f := newFencer(d, vg)
	f.logf("fencing VG %s: lease lost", vg)
	if release := f.lockFence(ctx); release != nil {
		defer release()
	}
	f.follow()
	// Recorded before the command runs: a timed-out disablequeueing may
	// still have taken effect, and restorequeueing is harmless if not.
	// Only the VG's map: others (a boot-from-SAN root) keep queueing.
	f.j.QueueingDisabled, f.j.QueueingMap = true, d.MultipathAlias
	f.saveJournal()
	f.step(queueingStep("disablequeueing", d.MultipathAlias), f.mp.DisableQueueing(ctx, d.MultipathAlias))

	if d.MultipathAlias != "" {
		f.j.FailIfNoPathMap = d.MultipathAlias
		f.step("dmsetup message "+d.MultipathAlias+" 0 fail_if_no_path", f.mp.FailIfNoPath(ctx, d.MultipathAlias))
	}

	tables, err := f.dm.Tables(ctx)
	f.step("dmsetup table (list)", err)
	if err != nil {
		// Without the list nothing can be wiped or verified: fail, and
		// let the watchdog fence the host.
		return f.finish(fmt.Errorf("%w: listing dm devices: %w", ErrNotFenced, err))
	}
	f.j.LVs = f.targets(tables)
	f.carryOver()
	f.saveJournal() // the list of LVs about to be fenced, before any wipe

	f.wipe(ctx)
	f.recordLeaseVersions(ctx)
	return f.finish(f.verify(ctx))
}

// wipe puts every listed LV not yet on the error target there: one dmsetup
// for all of them, given the wipe budget but one step. dmsetup stops at the
// first device it cannot wipe (removed meanwhile, or a flush that hung):
// then every LV still live gets its own wipe with what is left of the
// budget, the one the batch stopped at last, so a hung device costs the
// others nothing.
func (f *fencer) wipe(ctx context.Context) {
	var pending []*FencedLV
	var devices []string
	for i := range f.j.LVs {
		if lv := &f.j.LVs[i]; !lv.Fenced { // else error-tabled by an earlier fence
			pending = append(pending, lv)
			devices = append(devices, lv.Device)
		}
	}
	if len(pending) == 0 {
		return
	}
	wipeCtx, cancel := context.WithTimeout(ctx, wipeBudgetSteps*f.stepTimeout)
	defer cancel()
	batch := dm.New(f.d.Runner, (wipeBudgetSteps-1)*f.stepTimeout)
	err := batch.WipeTables(wipeCtx, devices...)
	f.step(fmt.Sprintf("dmsetup wipe_table (%s, one command)", countLVs(len(devices))), err)
	if err == nil {
		return
	}
	live := pending
	if tables, err := f.dm.Tables(wipeCtx); err == nil {
		errored := map[string]bool{} // device → error target, for devices that exist
		for _, t := range tables {
			errored[t.Name] = t.Errored()
		}
		live = nil
		for _, lv := range pending {
			if e, exists := errored[lv.Device]; exists && !e {
				live = append(live, lv)
			}
		}
	} else {
		f.step("dmsetup table (after the batch)", err)
	}
	if len(live) > 1 {
		live = append(live[1:], live[0])
	}
	for _, lv := range live {
		if err := wipeCtx.Err(); err != nil {
			lv.Error = "not attempted: wipe budget spent"
			f.logf("dmsetup wipe_table %s: not attempted, wipe budget spent", lv.Device)
			continue
		}
		err := f.dm.WipeTables(wipeCtx, lv.Device)
		if err != nil {
			lv.Error = err.Error()
		}
		f.step("dmsetup wipe_table "+lv.Device, err)
	}
}

func countLVs(n int) string {
	if n == 1 {
		return "1 LV"
	}
	return fmt.Sprintf("%d LVs", n)
}

// queueingStep names a multipathd queueing command as it runs.
func queueingStep(verb, mapName string) string {
	if mapName == "" {
		return "multipathd " + verb + " maps"
	}
	return "multipathd " + verb + " map " + mapName
}

// lockFence holds the fence lock for the whole fence, so a recovery or a
// refresh never loads a live table between the fence's wipes, nor after
// them without seeing its journal. They hold it for one step at a time:
// waiting one step for it is enough, and the fence goes on without it
// rather than miss sanlock's grace.
func (f *fencer) lockFence(ctx context.Context) (release func()) {
	release, err := f.d.LockFence(ctx, f.vg, f.stepTimeout)
	if err != nil {
		f.logf("fence lock: %v: fencing without it", err)
		return nil
	}
	return release
}

// follow makes this fence the next generation of a fence whose recovery
// has not finished (the lease was lost again, maybe while Recover ran) and
// keeps what only that journal knows: the LVs it deactivated but has not
// re-acquired yet, the LVs lost to other hosts, and the lease versions
// recorded before those LVs' locks were dropped.
func (f *fencer) follow() {
	prev, ok, err := findJournal(f.d.journalDirs(), f.vg)
	switch {
	case err != nil:
		f.logf("previous recovery journal unreadable, replacing it: %v", err)
		return
	case !ok:
		f.j.Generation = 1
		return
	}
	f.j.Generation = prev.Generation + 1
	f.prev = prev
	f.logf("VG %s was fenced before and not yet recovered: this is fence %d", f.vg, f.j.Generation)
}

// carried is what the previous generation's journal says of lv: its lease
// version if this host has not re-acquired it since (sanlock no longer
// lists it), and whether it was lost.
func (f *fencer) carried(lv string) (FencedLV, bool) {
	if f.prev == nil {
		return FencedLV{}, false
	}
	for _, p := range f.prev.LVs {
		if p.LV == lv {
			return p, true
		}
	}
	return FencedLV{}, false
}

// carryOver appends the previous generation's LVs that are not active now:
// those Recover deactivated and has still to re-acquire, and those it
// found lost. Active ones were listed from the tables like any other.
func (f *fencer) carryOver() {
	if f.prev == nil {
		return
	}
	listed := map[string]bool{}
	for _, lv := range f.j.LVs {
		listed[lv.LV] = true
	}
	for _, p := range f.prev.LVs {
		if listed[p.LV] || (p.Outcome != "" && p.Outcome != OutcomeLost && p.Outcome != OutcomeGone) {
			continue
		}
		p.Fenced, p.Error, p.InUse, p.Stale, p.Refreshed = true, "", false, "", false
		f.j.LVs = append(f.j.LVs, p)
	}
}

// recordLeaseVersions notes the version of each exclusive LV lease while
// sanlock still lists it (lvmlockctl drops the locks after the hook). An
// acquire bumps the version by one, so recovery can tell whether another
// host held the lease meanwhile: a paused VM must not resume on data that
// host may have written. Only local queries, after the wipes; a failure
// costs the VMs their automatic resume, never the fence.
func (f *fencer) recordLeaseVersions(ctx context.Context) {
	quick := f.leaseQueryTimeout()
	devs, err := dm.New(f.d.Runner, quick).Info(ctx)
	f.step("dmsetup info (LV uuids)", err)
	if err != nil {
		return
	}
	uuids := map[string]string{}
	for _, d := range devs {
		if u, ok := dm.LVUUID(d.UUID); ok {
			uuids[d.Name] = u
		}
	}
	st, err := sanlock.New(f.d.Runner, quick).Status(ctx)
	f.step("sanlock client status (lease versions)", err)
	if err != nil {
		return
	}
	for i := range f.j.LVs {
		lv := &f.j.LVs[i]
		if u := uuids[lv.Device]; u != "" {
			lv.UUID = u // the kernel's word over the held record's
		}
		if ver, ok := exclusiveLeaseVersion(st, f.vg, lv.UUID); ok {
			lv.LeaseVersion = ver
		} else if p, ok := f.carried(lv.LV); ok && p.Outcome == "" {
			lv.LeaseVersion = p.LeaseVersion // not re-acquired since the last fence
		}
	}
	f.saveJournal()
}

// exclusiveLeaseVersion finds the exclusive lease lvmlockd holds for the LV
// (its resource is named by the LV uuid, with dashes).
func exclusiveLeaseVersion(st *sanlock.Status, vg, lvUUID string) (uint64, bool) {
	if lvUUID == "" {
		return 0, false
	}
	want := strings.ReplaceAll(lvUUID, "-", "")
	for _, r := range st.Resources {
		if r.Lockspace == sanlock.LockspacePrefix+vg && !r.Shared && strings.ReplaceAll(r.Name, "-", "") == want {
			return r.Version, true
		}
	}
	return 0, false
}

// fenceSteps is the fence's worst case in steps: the fence lock's wait, the
// seven of DefaultStepTimeout's list and the two lease-version queries at
// half a step each.
const fenceSteps = 9

// leaseQueryTimeout bounds each lease-version query: local (an ioctl,
// sanlock's socket) yet slow with hundreds of LVs on a busy host (200 LVs
// under TCG overran half a step: every VM then stayed paused). A fence ahead
// of its worst case gives each query a full step, as long as what is left
// of the worst case still holds the verify; never less than the half step
// that worst case counts.
func (f *fencer) leaseQueryTimeout() time.Duration {
	half := f.stepTimeout / 2
	spare := (time.Until(f.worstCaseEnd) - f.stepTimeout) / 2
	return max(half, min(f.stepTimeout, spare))
}

type fencer struct {
	d Deps
	// worstCaseEnd is when the fence would end if every step ran out its
	// timeout (fenceSteps from the start).
	worstCaseEnd time.Time
	vg           string
	stepTimeout  time.Duration
	dm           *dm.Client
	mp           *multipath.Client
	held         *state.Held
	j            *Journal
	prev         *Journal    // an earlier fence's journal not yet recovered
	lv           *lvm.Client // recovery's lvm commands
}

func newFencer(d Deps, vg string) *fencer {
	if d.StepTimeout <= 0 {
		d.StepTimeout = DefaultStepTimeout
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = func(string, ...any) {}
	}
	f := &fencer{d: d, vg: vg, stepTimeout: d.StepTimeout, worstCaseEnd: time.Now().Add(fenceSteps * d.StepTimeout),
		dm: dm.New(d.Runner, d.StepTimeout), mp: multipath.New(d.Runner, d.StepTimeout)}
	now := d.Now().UTC()
	f.j = &Journal{Version: journalVersion, VG: vg, Phase: PhaseFencing, Started: now, Updated: now, BootID: d.BootID}
	if f.j.BootID == "" {
		f.j.BootID = CurrentBootID()
	}
	// The held record gives each LV's lock mode, which recovery needs to
	// re-acquire it; an unreadable record must not stop the fence.
	held, err := state.OpenHeld(d.StateDir)
	if err != nil {
		f.logf("held LV record unreadable, lock modes will be missing from the journal: %v", err)
	}
	f.held = held
	return f
}

func (f *fencer) logf(format string, args ...any) { f.d.Log(format, args...) }

// step logs a step's outcome and keeps failures in the journal.
func (f *fencer) step(name string, err error) {
	if err == nil {
		f.logf("%s: ok", name)
		return
	}
	f.logf("%s: FAILED: %v", name, err)
	f.j.Failures = append(f.j.Failures, name+": "+err.Error())
}

// targets picks the VG's top-level LV devices from the table: the device of
// each LV itself, not its layers ("-real", "-cow", "-tpool", ...) which
// only the top-level device reaches, and never lvmlock.
func (f *fencer) targets(tables []dm.Table) []FencedLV {
	out := []FencedLV{} // a journal lists no LVs as [], not null
	for _, t := range tables {
		vg, lv, ok := dm.UserLV(t.Name) // never lvmlockd's lease LV: lock-start needs it
		if !ok || vg != f.vg {
			continue
		}
		r := FencedLV{LV: lv, Device: t.Name, Fenced: t.Errored()}
		if f.held != nil {
			if h, ok := f.held.Get(vg, lv); ok {
				r.Mode, r.UUID = h.Mode, h.UUID
			}
		}
		out = append(out, r)
	}
	return out
}

// verify re-reads every table: success needs each top-level LV of the VG,
// including any that appeared since the list, to have the error target.
func (f *fencer) verify(ctx context.Context) error {
	tables, err := f.dm.Tables(ctx)
	f.step("dmsetup table (verify)", err)
	if err != nil {
		for i := range f.j.LVs {
			f.j.LVs[i].Fenced = false
		}
		return fmt.Errorf("%w: verifying: %w", ErrNotFenced, err)
	}
	now := map[string]FencedLV{}
	for _, lv := range f.targets(tables) {
		now[lv.Device] = lv
	}
	var missed []string
	for i := range f.j.LVs {
		lv := &f.j.LVs[i]
		cur, active := now[lv.Device]
		delete(now, lv.Device)
		// A device gone from the table does no I/O: offline.
		lv.Fenced = !active || cur.Fenced
		if lv.Fenced {
			lv.Error = ""
		} else {
			missed = append(missed, lv.Device)
		}
	}
	for _, dev := range slices.Sorted(maps.Keys(now)) {
		lv := now[dev]
		// Activated after the list was taken: never wiped.
		if !lv.Fenced {
			lv.Error = "appeared after the device list was taken"
			missed = append(missed, lv.Device)
		}
		f.j.LVs = append(f.j.LVs, lv)
	}
	if len(missed) > 0 {
		return fmt.Errorf("%w: still without the error target: %v", ErrNotFenced, missed)
	}
	return nil
}

// finish records the outcome. A verdict written nowhere fails the fence
// (ErrJournalNotWritten); one written only to the runtime directory is
// enough: the agent reads both.
func (f *fencer) finish(err error) (*Journal, error) {
	f.j.Phase = PhaseFenced
	if err != nil {
		f.j.Phase = PhaseFenceFailed
	}
	if werr := f.saveJournal(); werr != nil && err == nil {
		f.j.Phase = PhaseFenceFailed
		err = fmt.Errorf("%w: %w", ErrJournalNotWritten, werr)
	}
	fenced := 0
	for _, lv := range f.j.LVs {
		if lv.Fenced {
			fenced++
		}
	}
	if err != nil {
		f.logf("fencing VG %s FAILED (%d of %d LVs fenced): %v", f.vg, fenced, len(f.j.LVs), err)
	} else {
		f.logf("fencing VG %s done: %d LVs fenced", f.vg, fenced)
	}
	return f.j, err
}

// saveJournal writes the journal; a failure before the verdict is only
// logged, the fence goes on.
func (f *fencer) saveJournal() error {
	f.j.Updated = f.d.Now().UTC()
	err := saveJournal(f.d.journalDirs(), f.j)
	if err != nil {
		f.logf("recovery journal not written: %v", err)
	}
	return err
}
