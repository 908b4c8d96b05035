package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Backoff between automatic attempts on one VG: a recovery that failed
// half-way (lock-start refused, an activation timing out) is retried, but
// not in a tight loop against a SAN that is still flapping.
const (
	autoRecoverFirstRetry = 15 * time.Second
	autoRecoverMaxRetry   = 5 * time.Minute
)

// Results of an automatic attempt (label values of aos_recovery_runs_total).
const (
	recoveryDone       = "done"
	recoveryIncomplete = "incomplete" // journal kept: an LV still to do
	recoveryFailed     = "failed"
)

// autoRecovery runs recovery.Recover for a VG the kill hook fenced, and
// recovery.Rejoin for one whose lease failed with nothing to fence, once its
// multipath map has an active path again ([recovery] mode = auto). It only
// starts from the phases Recover can finish on its own (fenced, recovering):
// a fence that did not finish needs an operator's look at the dm tables.
type autoRecovery struct {
	deps    recovery.Deps
	log     *zap.Logger
	runs    *prometheus.CounterVec
	rejoins *prometheus.CounterVec
	now     func() time.Time

	mu      sync.Mutex
	running map[string]bool
	retryAt map[string]time.Time
	backoff map[string]time.Duration
	warned  map[string]recovery.Phase // phase last reported as needing an operator
	wg      sync.WaitGroup
}

func newAutoRecovery(deps recovery.Deps, log *zap.Logger, reg prometheus.Registerer) *autoRecovery {
	a := &autoRecovery{
		deps: deps, log: log, now: time.Now,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aos_recovery_runs_total",
			Help: "Automatic recovery attempts of a fenced VG, by result (done, incomplete, failed)."}, []string{"vg", "result"}),
		rejoins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aos_lockspace_rejoins_total",
			Help: "Automatic starts of a lockspace sanlock dropped after a lease failure with no LV lock held, by result (done, failed)."}, []string{"vg", "result"}),
		running: map[string]bool{}, retryAt: map[string]time.Time{}, backoff: map[string]time.Duration{},
		warned: map[string]recovery.Phase{},
	}
	reg.MustRegister(a.runs, a.rejoins)
	return a
}

// consider starts a recovery for each journal that can be recovered now,
// and a rejoin for each lockspace sanlock dropped (or a rejoin left
// unfinished). It never blocks the health loop: both run in their own
// goroutine.
func (a *autoRecovery) consider(ctx context.Context, s Snapshot, journals []*recovery.Journal) {
	fenced := map[string]bool{}
	for _, j := range journals {
		fenced[j.VG] = true
	}
	for vg := range s.Lockspaces {
		st := s.LockspaceState(vg)
		pending := recovery.RejoinPending(a.deps, vg)
		if pending && st == sanlock.StateJoined {
			if err := recovery.ClearRejoinPending(a.deps, vg); err != nil {
				a.log.Error("rejoin marker not removed", zap.String("vg", vg), zap.Error(err))
			}
			continue
		}
		again := st == sanlock.StateAbsent && pending
		if (st == sanlock.StateDropped || again) && !fenced[vg] && storageBack(s, a.deps.MultipathAlias) && a.claim(vg) {
			a.wg.Add(1)
			go a.rejoin(ctx, vg)
		}
	}
	for _, j := range journals {
		if j.Phase == recovery.PhaseFencing && a.fenceRunning(ctx, j.VG) {
			continue // the kill hook is still at work: not a stuck fence yet
		}
		if j.Phase != recovery.PhaseFenced && j.Phase != recovery.PhaseRecovering {
			a.needsOperator(j)
			continue
		}
		if storageBack(s, a.deps.MultipathAlias) && a.claim(j.VG) {
			a.wg.Add(1)
			go a.recover(ctx, j.VG)
		}
	}
}

// storageBack: the map has an active path again (or no map is configured);
// until then Recover and Rejoin would refuse anyway.
func storageBack(s Snapshot, alias string) bool {
	if s.Map != nil {
		return len(s.Map.ActivePaths()) > 0
	}
	return alias == "" // else the map was not readable this poll
}

// claim marks vg's attempt running unless one runs or its backoff is on.
func (a *autoRecovery) claim(vg string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running[vg] || a.now().Before(a.retryAt[vg]) {
		return false
	}
	a.running[vg] = true
	return true
}

// fenceRunning: a fence holds the VG's fence lock from its first journal
// write to its verdict, so a "fencing" journal whose lock is free was left by
// a fence that died (or, rarely, one that went on without the lock).
func (a *autoRecovery) fenceRunning(ctx context.Context, vg string) bool {
	release, err := a.deps.LockFence(ctx, vg, 0)
	if err != nil {
		return errors.Is(err, recovery.ErrFenceLockTimeout)
	}
	release()
	return false
}

func (a *autoRecovery) needsOperator(j *recovery.Journal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.warned[j.VG] == j.Phase {
		return
	}
	a.warned[j.VG] = j.Phase
	a.log.Error("fenced VG needs an operator: automatic recovery only resumes a finished fence",
		zap.String("vg", j.VG), zap.String("phase", string(j.Phase)),
		zap.String("runbook", "docs/runbooks/aosrecoverystuck.md"))
}

func (a *autoRecovery) recover(ctx context.Context, vg string) {
	defer a.wg.Done()
	log := a.log.With(zap.String("vg", vg))
	log.Warn("storage is back: starting automatic recovery of the fenced VG")
	start := a.now()
	rep, err := recovery.Recover(ctx, a.deps, vg)
	result := recoveryDone
	switch {
	case errors.Is(err, recovery.ErrIncomplete):
		result = recoveryIncomplete
	case err != nil:
		result = recoveryFailed
	}
	if !errors.Is(err, recovery.ErrBusy) { // an operator's run is not ours to count
		a.runs.WithLabelValues(vg, result).Inc()
	}
	for _, lv := range rep.Lost {
		log.Error("LV lost to another host during the fence: its VM must not be resumed here", zap.String("lv", lv.LV))
	}
	report := strings.TrimSpace(rep.String())
	if next := a.finish(vg, err); err != nil {
		log.Error("automatic recovery not finished; retrying", zap.Error(err), zap.Duration("retry_in", next), zap.String("report", report))
		return
	}
	log.Info("automatic recovery done", zap.Duration("took", a.now().Sub(start)), zap.String("report", report))
}

// finish ends vg's attempt: a success clears its backoff, a failure doubles
// it (from 15 s, to at most 5 min) and returns it.
func (a *autoRecovery) finish(vg string, err error) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running[vg] = false
	if err == nil {
		delete(a.backoff, vg)
		delete(a.retryAt, vg)
		return 0
	}
	next := max(autoRecoverFirstRetry, min(a.backoff[vg]*2, autoRecoverMaxRetry))
	a.backoff[vg], a.retryAt[vg] = next, a.now().Add(next)
	return next
}

// rejoin starts a lockspace sanlock dropped under lvmlockd (a lease lost
// while nothing was held, so nothing was fenced) once storage is back.
func (a *autoRecovery) rejoin(ctx context.Context, vg string) {
	defer a.wg.Done()
	log := a.log.With(zap.String("vg", vg))
	log.Warn("storage is back: starting the lockspace sanlock dropped (its lease failed while no LV lock was held)")
	joined, err := recovery.Rejoin(ctx, a.deps, vg)
	switch {
	case errors.Is(err, recovery.ErrBusy):
	case err != nil:
		a.rejoins.WithLabelValues(vg, recoveryFailed).Inc()
	case joined:
		a.rejoins.WithLabelValues(vg, recoveryDone).Inc()
	}
	if next := a.finish(vg, err); err != nil {
		log.Error("lockspace not rejoined; retrying", zap.Error(err), zap.Duration("retry_in", next))
	} else if joined {
		log.Info("lockspace rejoined")
	}
}

// wait returns once every started recovery has returned (ctx cancelled).
func (a *autoRecovery) wait() { a.wg.Wait() }
