package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/recovery"
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

// autoRecovery runs recovery.Recover for a VG the kill hook fenced, once its
// multipath map has an active path again ([recovery] mode = auto). It only
// starts from the phases Recover can finish on its own (fenced, recovering):
// a fence that did not finish needs an operator's look at the dm tables.
type autoRecovery struct {
	deps recovery.Deps
	log  *zap.Logger
	runs *prometheus.CounterVec
	now  func() time.Time

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
		running: map[string]bool{}, retryAt: map[string]time.Time{}, backoff: map[string]time.Duration{},
		warned: map[string]recovery.Phase{},
	}
	reg.MustRegister(a.runs)
	return a
}

// consider starts a recovery for each journal that can be recovered now. It
// never blocks the health loop: Recover runs in its own goroutine.
func (a *autoRecovery) consider(ctx context.Context, s Snapshot, journals []*recovery.Journal) {
	for _, j := range journals {
		if j.Phase == recovery.PhaseFencing && a.fenceRunning(ctx, j.VG) {
			continue // the kill hook is still at work: not a stuck fence yet
		}
		if j.Phase != recovery.PhaseFenced && j.Phase != recovery.PhaseRecovering {
			a.needsOperator(j)
			continue
		}
		if s.Map != nil && len(s.Map.ActivePaths()) == 0 {
			continue // storage still gone: Recover would refuse anyway
		}
		if a.deps.MultipathAlias != "" && s.Map == nil {
			continue // map not readable this poll
		}
		a.mu.Lock()
		if a.running[j.VG] || a.now().Before(a.retryAt[j.VG]) {
			a.mu.Unlock()
			continue
		}
		a.running[j.VG] = true
		a.mu.Unlock()
		a.wg.Add(1)
		go a.recover(ctx, j.VG)
	}
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
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running[vg] = false
	if err == nil {
		delete(a.backoff, vg)
		delete(a.retryAt, vg)
		log.Info("automatic recovery done", zap.Duration("took", a.now().Sub(start)), zap.String("report", report))
		return
	}
	next := a.backoff[vg] * 2
	next = max(autoRecoverFirstRetry, min(next, autoRecoverMaxRetry))
	a.backoff[vg], a.retryAt[vg] = next, a.now().Add(next)
	log.Error("automatic recovery not finished; retrying", zap.Error(err), zap.Duration("retry_in", next), zap.String("report", report))
}

// wait returns once every started recovery has returned (ctx cancelled).
func (a *autoRecovery) wait() { a.wg.Wait() }
