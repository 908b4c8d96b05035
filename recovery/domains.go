package recovery

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"

	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
	"github.com/aos-agent/aos-agent/virt"
)

// What recovery did with a domain using a fenced LV.
const (
	DomainResumed    = "resumed"     // paused on I/O error, all its LVs back: resumed
	DomainRunning    = "running"     // never paused (no I/O during the outage): left running
	DomainKeptPaused = "kept-paused" // an LV of it is not safely back: paused, never resumed here
	DomainLeftPaused = "left-paused" // paused for another reason (an operator, a migration)
	DomainShutOff    = "shut-off"
)

// checkLeaseVersions marks the in-use exclusive LVs just re-acquired whose
// lease another host held during the outage (its version moved by more
// than this host's own acquire), or for which that cannot be ruled out.
// Their VMs paused with the page cache of before the outage; resuming them
// on data written elsewhere would corrupt it. Shared leases show no version:
// a shared LV is re-acquired and resumed on the lock alone.
func (f *fencer) checkLeaseVersions(ctx context.Context, lvs []*FencedLV) {
	var st *sanlock.Status
	var stErr error
	for _, p := range lvs {
		if !p.InUse || p.Mode != state.Exclusive {
			continue
		}
		if st == nil && stErr == nil {
			st, stErr = sanlock.New(f.d.Runner, f.stepTimeout).Status(ctx)
		}
		ver, ok := uint64(0), false
		if stErr == nil {
			ver, ok = exclusiveLeaseVersion(st, f.vg, p.UUID)
		}
		switch {
		case p.LeaseVersion == 0:
			p.Stale = "its lease version was not recorded at the fence: another host may have held it meanwhile"
		case stErr != nil:
			p.Stale = "sanlock client status after the re-acquire: " + stErr.Error()
		case !ok:
			p.Stale = "its lease is not listed by sanlock after the re-acquire"
		case ver != p.LeaseVersion+1:
			p.Stale = fmt.Sprintf("lease version %d at the fence, %d now: another host held it meanwhile", p.LeaseVersion, ver)
		default:
			continue
		}
		f.logf("ERROR: %s/%s re-acquired but its data may have changed (%s): it keeps the error table, its VM stays paused", f.vg, p.LV, p.Stale)
	}
}

// refreshChunk is how many LVs one guarded refresh reloads: one lock check
// and one lvchange for them all (one LV at a time, 200 LVs took ~200 s
// under TCG), while the fence lock is held for well under a step, the
// longest a fence waits for it.
const refreshChunk = 8

// refreshInUse reloads the table of each re-acquired LV that its VM kept
// open through the fence, so the VM finds its disk again on resume. lvm2
// reloads a table without any lock, over a fence's error target too (lab),
// so each chunk of refreshes runs under the fence lock, after checking that
// no new fence came and that this host still holds each LV's lock.
func (f *fencer) refreshInUse(ctx context.Context) error {
	var todo []*FencedLV
	for i := range f.j.LVs {
		if p := &f.j.LVs[i]; p.Outcome == OutcomeReacquired && p.InUse && p.Stale == "" && !p.Refreshed {
			todo = append(todo, p)
		}
	}
	var errs []error
	failed := func(p *FencedLV, err error) {
		p.Error = err.Error()
		errs = append(errs, fmt.Errorf("%s/%s: %w", f.vg, p.LV, err))
	}
	for chunk := range slices.Chunk(todo, refreshChunk) {
		err := f.guarded(ctx, func() error {
			unlocked, err := f.unlocked(ctx, chunk)
			if err != nil {
				return err
			}
			var locked []*FencedLV
			for _, p := range chunk {
				if err := unlocked[p.LV]; err != nil {
					failed(p, err)
				} else {
					locked = append(locked, p)
				}
			}
			if len(locked) == 0 {
				return nil
			}
			res, err := f.lv.Refresh(ctx, f.vg, lvNames(locked)...)
			for _, p := range locked {
				if err != nil && !slices.Contains(res.Changed, p.LV) {
					failed(p, fmt.Errorf("lvchange --refresh: %w", res.Failed[p.LV]))
					continue
				}
				p.Refreshed, p.Error = true, ""
				f.logf("refreshed %s/%s: its table is live again", f.vg, p.LV)
			}
			return nil
		})
		if errors.Is(err, ErrFencedAgain) {
			return err
		}
		if err != nil {
			for _, p := range chunk {
				failed(p, err)
			}
		}
	}
	return errors.Join(errs...)
}

// settleDomains resumes the domains the outage paused whose every fenced LV
// is back, live, unchanged and still locked here (each domain under the
// fence lock, as a refresh), and keeps paused (suspending a running one)
// each domain with an LV that is not: lost to another host, possibly
// written elsewhere, or still on the error table. A domain an operator
// paused is left as it is. Outcomes go to the journal, so a re-run only
// handles the domains still open.
func (f *fencer) settleDomains(ctx context.Context) error {
	if f.d.LibvirtURI == "" {
		return nil
	}
	v := virt.New(f.d.Runner, f.d.LibvirtURI, f.stepTimeout)
	names, err := v.Domains(ctx)
	if errors.Is(err, exec.ErrNotFound) {
		return nil // no libvirt on this host: no domains
	}
	if err != nil {
		return fmt.Errorf("listing domains: %w", err)
	}
	fenced := map[string]*FencedLV{}
	for i := range f.j.LVs {
		fenced[f.j.LVs[i].LV] = &f.j.LVs[i]
	}
	var errs []error
	for _, name := range names {
		if slices.ContainsFunc(f.j.Domains, func(d DomainOutcome) bool { return d.Name == name }) {
			continue
		}
		disks, err := v.Disks(ctx, name)
		if errors.Is(err, virt.ErrNoDomain) {
			continue // undefined since the list
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("domain %s: %w", name, err))
			continue
		}
		var lvs []*FencedLV
		for _, d := range disks {
			if lv, ok := virt.LVOf(d.Source, f.vg); ok && fenced[lv] != nil {
				lvs = append(lvs, fenced[lv])
			}
		}
		if len(lvs) == 0 {
			continue
		}
		var out DomainOutcome
		err = f.guarded(ctx, func() (err error) {
			out, err = f.settleDomain(ctx, v, name, lvs)
			return err
		})
		if errors.Is(err, ErrFencedAgain) {
			return err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("domain %s: %w", name, err))
			continue
		}
		f.j.Domains = append(f.j.Domains, out)
	}
	return errors.Join(errs...)
}

func (f *fencer) settleDomain(ctx context.Context, v *virt.Client, name string, lvs []*FencedLV) (DomainOutcome, error) {
	out := DomainOutcome{Name: name}
	var blocked []string
	for _, p := range lvs {
		out.LVs = append(out.LVs, p.LV)
		switch {
		case p.Outcome == OutcomeLost:
			blocked = append(blocked, p.LV+" is held by another host")
		case p.Outcome == OutcomeGone:
			blocked = append(blocked, p.LV+" was deleted by another host")
		case p.Stale != "":
			blocked = append(blocked, p.LV+": "+p.Stale)
		case p.Outcome == OutcomeNotHeld:
			blocked = append(blocked, p.LV+" was not activated by the agent, so it was not re-acquired")
		case p.InUse && !p.Refreshed:
			blocked = append(blocked, p.LV+" is still on the error table")
		}
	}
	st, err := v.State(ctx, name)
	if err != nil {
		return out, err
	}
	out.State = st.String()
	switch {
	case len(blocked) > 0:
		out.Outcome, out.Why = DomainKeptPaused, fmt.Sprint(blocked)
		if st.State == "shut off" {
			out.Outcome = DomainShutOff
			break
		}
		if st.State == "running" {
			if err := v.Suspend(ctx, name); err != nil {
				return out, err
			}
		}
		f.logf("ERROR: domain %s stays paused: %s; do not resume or start it here", name, out.Why)
	case st.PausedOnIOError():
		if err := f.checkLocked(ctx, lvs); err != nil {
			return out, err
		}
		if err := v.Resume(ctx, name); err != nil {
			return out, err
		}
		out.Outcome = DomainResumed
		f.logf("resumed domain %s", name)
	case st.State == "paused":
		out.Outcome, out.Why = DomainLeftPaused, "paused ("+st.Reason+"), not by an I/O error"
		f.logf("domain %s left paused: %s", name, out.Why)
	case st.State == "shut off":
		out.Outcome = DomainShutOff
	default:
		out.Outcome = DomainRunning
	}
	return out, nil
}
