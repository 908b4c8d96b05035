package agent

import (
	"context"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// heldReconciler makes held.json agree with lvmlockd once per VG after the
// agent starts, as soon as the VG's lockspace is joined and no fence
// journal exists: a crash between an lvchange and its record, or a lock
// released behind the agent's back, would otherwise mislead the next fence
// and recovery. It runs beside the health loop (it may wait for a request
// holding an LV) and reports what differed.
type heldReconciler struct {
	// reconcile is svc.ReconcileHeld; the chaos test's self-check swaps in
	// one that claims success and does nothing.
	reconcile func(ctx context.Context, vg string) ([]volumes.HeldDifference, error)
	log       *zap.Logger
	// timeout bounds one VG's run, waits for busy LVs included; a run cut
	// short is tried again at the next poll.
	timeout time.Duration
	total   *prometheus.CounterVec

	wg      sync.WaitGroup
	mu      sync.Mutex
	done    map[string]bool
	running map[string]bool
	last    map[string]heldReconciliation
}

type heldReconciliation struct {
	At          time.Time                `json:"at"`
	Differences []volumes.HeldDifference `json:"differences"`
	Error       string                   `json:"error,omitempty"`
}

func newHeldReconciler(svc *volumes.Service, log *zap.Logger, reg prometheus.Registerer) *heldReconciler {
	r := &heldReconciler{reconcile: svc.ReconcileHeld, log: log, timeout: 2 * time.Minute,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aos_held_reconciled_total",
			Help: "Differences between held.json and lvmlockd's locks found (and settled) after the agent started, by kind: unrecorded, lock_gone, mode_differs."}, []string{"kind"}),
		done: map[string]bool{}, running: map[string]bool{}, last: map[string]heldReconciliation{}}
	for _, k := range []string{"unrecorded", "lock_gone", "mode_differs"} {
		r.total.WithLabelValues(k)
	}
	reg.MustRegister(r.total)
	return r
}

// start reconciles vg in the background unless it is done or under way.
func (r *heldReconciler) start(ctx context.Context, vg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done[vg] || r.running[vg] {
		return
	}
	r.running[vg] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, r.timeout)
		defer cancel()
		diffs, err := r.reconcile(ctx, vg)
		rec := heldReconciliation{At: time.Now(), Differences: diffs}
		if rec.Differences == nil {
			rec.Differences = []volumes.HeldDifference{}
		}
		for _, d := range diffs {
			r.total.WithLabelValues(d.Kind).Inc()
			if d.Kind == "lock_gone" && d.Active {
				r.log.Error("held.json recorded a lock lvmlockd does not hold, and the LV is active here without it: another host may take and write it; deactivate it or attach it again",
					zap.String("vg", vg), zap.String("lv", d.LV), zap.String("recorded", string(d.Recorded)))
				continue
			}
			r.log.Warn("held.json did not match lvmlockd; now it does", zap.String("vg", vg), zap.String("lv", d.LV),
				zap.String("kind", d.Kind), zap.String("recorded", string(d.Recorded)), zap.String("locked", string(d.Locked)))
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.running[vg] = false
		if err != nil {
			rec.Error = err.Error()
			r.log.Warn("held.json not reconciled with lvmlockd; trying again at the next poll", zap.String("vg", vg), zap.Error(err))
		} else {
			r.done[vg] = true
		}
		r.last[vg] = rec
	}()
}

// wait returns once no run is under way (tests).
func (r *heldReconciler) wait() { r.wg.Wait() }

// status is get_status' view: each VG's last run.
func (r *heldReconciler) status() map[string]heldReconciliation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]heldReconciliation, len(r.last))
	for vg, rec := range r.last {
		out[vg] = rec
	}
	return out
}
