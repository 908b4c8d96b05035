package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Collector names, bounded: they label aos_collector_success and
// aos_collector_hung.
const (
	collectorSanlock   = "sanlock"
	collectorLockctl   = "lvmlockctl"
	collectorMultipath = "multipath"
)

// errProbeHung is a collector whose daemon did not answer within the probe
// deadline or the command timeout: hung rather than down.
var errProbeHung = errors.New("probe hung")

// Snapshot is one poll of the host's lock and path state.
type Snapshot struct {
	Time       time.Time
	Lockspaces map[string]*sanlock.Lockspace // every configured VG, and only those
	Map        *multipath.Map                // nil when no alias is configured or it is missing
	Errors     map[string]error              // by collector; nil entries are omitted
	// SanlockVersion is the daemon's version_str ("" when status failed).
	SanlockVersion string
}

// Hung lists, sorted, the collectors whose probe hung.
func (s Snapshot) Hung() []string {
	var out []string
	for c, err := range s.Errors {
		if errors.Is(err, errProbeHung) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// LockspaceState is the state of vg's lockspace, StateAbsent when unknown.
func (s Snapshot) LockspaceState(vg string) sanlock.State {
	if l := s.Lockspaces[vg]; l != nil {
		return l.State()
	}
	return sanlock.StateAbsent
}

// Monitor polls sanlock, lvmlockd and multipathd. It is the only reader of
// lockspace health: the daemon's readiness and watchdog, get_status, the
// metrics and recovery's trigger all read its snapshots.
type Monitor struct {
	Sanlock   *sanlock.Client
	LockCtl   *sanlock.LockCtl
	Multipath *multipath.Client
	Alias     string   // multipath alias of the shared LUN; "" skips the map
	VGs       []string // configured VGs
	Interval  time.Duration
	Log       *zap.Logger
	// ProbeTimeout bounds each collector's probe of a poll; 0 leaves them
	// to their command timeout. The daemon keeps it well below the
	// watchdog interval: the poll holds up the loop that pets it.
	ProbeTimeout time.Duration

	mu   sync.RWMutex
	last Snapshot

	metrics *monitorMetrics
}

type monitorMetrics struct {
	joined, failed, renewalAge *prometheus.GaugeVec
	locks                      *prometheus.GaugeVec
	paths, pathsActive         *prometheus.GaugeVec
	collectorOK, collectorHung *prometheus.GaugeVec
}

// Register adds the monitor's metrics to reg.
func (m *Monitor) Register(reg prometheus.Registerer) error {
	mm := &monitorMetrics{
		joined: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_lockspace_joined",
			Help: "1 when this host has joined the VG's sanlock lockspace."}, []string{"vg"}),
		failed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_lockspace_failed",
			Help: "1 when the VG's lease renewal failed or the VG was killed (space_dead, renew_fail, kill_vg)."}, []string{"vg"}),
		renewalAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_lockspace_renewal_age_seconds",
			Help: "Seconds since the last successful lease renewal."}, []string{"vg"}),
		locks: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_lv_locks",
			Help: "LV locks this host holds, by mode (from lvmlockd)."}, []string{"vg", "mode"}),
		paths: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_multipath_paths",
			Help: "Paths of the shared LUN's multipath map."}, []string{"map"}),
		pathsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_multipath_paths_active",
			Help: "Paths of the shared LUN's multipath map that can carry I/O."}, []string{"map"}),
		collectorOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_collector_success",
			Help: "1 when the collector's last poll succeeded."}, []string{"collector"}),
		collectorHung: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aos_collector_hung",
			Help: "1 when the collector's last probe got no answer in time: its daemon is hung, not down."}, []string{"collector"}),
	}
	for _, c := range []prometheus.Collector{mm.joined, mm.failed, mm.renewalAge, mm.locks, mm.paths, mm.pathsActive, mm.collectorOK, mm.collectorHung} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	for _, c := range []string{collectorSanlock, collectorLockctl, collectorMultipath} {
		mm.collectorOK.WithLabelValues(c).Set(0)
		mm.collectorHung.WithLabelValues(c).Set(0)
	}
	for _, vg := range m.VGs {
		mm.joined.WithLabelValues(vg).Set(0)
		mm.failed.WithLabelValues(vg).Set(0)
		mm.locks.WithLabelValues(vg, "ex").Set(0)
		mm.locks.WithLabelValues(vg, "sh").Set(0)
	}
	m.metrics = mm
	return nil
}

// Last returns the latest snapshot (zero before the first poll).
func (m *Monitor) Last() Snapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.last
}

// Poll reads the host once, stores and returns the snapshot. A failing
// source leaves its part empty and is reported in Errors; it never fails the
// whole poll. The collectors are probed concurrently, each within
// ProbeTimeout, so a hung daemon neither blinds the others nor holds up the
// poll for longer than that.
func (m *Monitor) Poll(ctx context.Context) Snapshot {
	snap := Snapshot{Time: time.Now(), Errors: map[string]error{}}
	var (
		wg                 sync.WaitGroup
		status             *sanlock.Status
		lk                 lockctlState
		mp                 *multipath.Map
		serr, lkerr, mperr error
	)
	wg.Go(func() { status, serr = probe(ctx, m.ProbeTimeout, m.Sanlock.Status) })
	wg.Go(func() { lk, lkerr = probe(ctx, m.ProbeTimeout, m.lockctl) })
	if m.Alias != "" {
		wg.Go(func() {
			mp, mperr = probe(ctx, m.ProbeTimeout, func(ctx context.Context) (*multipath.Map, error) {
				return m.Multipath.Map(ctx, m.Alias)
			})
		})
	}
	wg.Wait()
	m.note(&snap, collectorSanlock, serr)
	m.note(&snap, collectorLockctl, lkerr)
	// Only configured VGs: another VG's lockspace on this host is not ours.
	all := sanlock.Health(status, lk.info, lk.dump)
	if status != nil {
		snap.SanlockVersion = status.Daemon["version_str"]
	}
	snap.Lockspaces = make(map[string]*sanlock.Lockspace, len(m.VGs))
	for _, vg := range m.VGs {
		l := all[vg]
		if l == nil {
			l = &sanlock.Lockspace{VG: vg, Name: sanlock.LockspacePrefix + vg, Locks: map[string]sanlock.LockMode{}}
		}
		snap.Lockspaces[vg] = l
	}
	if m.Alias != "" {
		m.note(&snap, collectorMultipath, mperr)
		snap.Map = mp
	}
	m.update(snap)
	m.mu.Lock()
	m.last = snap
	m.mu.Unlock()
	return snap
}

// lockctlState is what lvmlockd reports: the dump carries kill_vg.
type lockctlState struct {
	info *sanlock.Info
	dump *sanlock.Dump
}

func (m *Monitor) lockctl(ctx context.Context) (lockctlState, error) {
	info, err := m.LockCtl.Info(ctx)
	if err != nil {
		return lockctlState{}, err
	}
	dump, err := m.LockCtl.Dump(ctx)
	return lockctlState{info: info, dump: dump}, err
}

// probe runs f within timeout (0: no deadline of its own) and returns when
// f does or at the deadline, whichever comes first: f is left to end on its
// context, the poll does not wait for it. A miss, or a command of f timing
// out, is errProbeHung.
func probe[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	pctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f(pctx)
		done <- result{v, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-pctx.Done():
		select {
		case r = <-done: // it answered just in time
		default:
			if ctx.Err() != nil {
				return r.v, ctx.Err()
			}
			return r.v, fmt.Errorf("%w: no answer within %s", errProbeHung, timeout)
		}
	}
	if errors.Is(r.err, errdefs.ErrCommandTimeout) && ctx.Err() == nil {
		r.err = fmt.Errorf("%w: %w", errProbeHung, r.err)
	}
	return r.v, r.err
}

func (m *Monitor) note(s *Snapshot, collector string, err error) {
	if err != nil {
		s.Errors[collector] = err
		if m.Log != nil {
			m.Log.Warn("host state collector failed", zap.String("collector", collector), zap.Error(err))
		}
	}
	if m.metrics != nil {
		v := 1.0
		if err != nil {
			v = 0
		}
		m.metrics.collectorOK.WithLabelValues(collector).Set(v)
		m.metrics.collectorHung.WithLabelValues(collector).Set(b2f(errors.Is(err, errProbeHung)))
	}
}

func (m *Monitor) update(s Snapshot) {
	mm := m.metrics
	if mm == nil {
		return
	}
	for _, vg := range m.VGs {
		l := s.Lockspaces[vg]
		st := l.State()
		mm.joined.WithLabelValues(vg).Set(b2f(st == sanlock.StateJoined || st == sanlock.StateWarning))
		mm.failed.WithLabelValues(vg).Set(b2f(st == sanlock.StateFailed || st == sanlock.StateKilled))
		mm.renewalAge.WithLabelValues(vg).Set(l.RenewalAge.Seconds())
		var ex, sh int
		for _, mode := range l.Locks {
			switch mode {
			case sanlock.ModeEx:
				ex++
			case sanlock.ModeSh:
				sh++
			}
		}
		mm.locks.WithLabelValues(vg, "ex").Set(float64(ex))
		mm.locks.WithLabelValues(vg, "sh").Set(float64(sh))
	}
	if s.Map != nil {
		mm.paths.WithLabelValues(m.Alias).Set(float64(len(s.Map.Paths())))
		mm.pathsActive.WithLabelValues(m.Alias).Set(float64(len(s.Map.ActivePaths())))
	} else if m.Alias != "" {
		mm.pathsActive.WithLabelValues(m.Alias).Set(0)
	}
}

// LockspaceStatus is get_status' view of one VG.
type LockspaceStatus struct {
	VG                string  `json:"volume_group"`
	Lockspace         string  `json:"lockspace"`
	State             string  `json:"state"`
	HostID            uint64  `json:"host_id"`
	RenewalAgeSeconds float64 `json:"renewal_age_seconds"`
	IOTimeout         int     `json:"io_timeout"`
	LocksExclusive    int     `json:"locks_exclusive"`
	LocksShared       int     `json:"locks_shared"`
}

// MultipathStatus is get_status' view of the shared LUN's map.
type MultipathStatus struct {
	Alias       string       `json:"alias"`
	Present     bool         `json:"present"`
	Queueing    string       `json:"queueing,omitempty"`
	PathsTotal  int          `json:"paths_total"`
	PathsActive int          `json:"paths_active"`
	Paths       []PathStatus `json:"paths"`
}

type PathStatus struct {
	Device  string `json:"device"`
	DMState string `json:"dm_state"`
	Checker string `json:"checker_state"`
	State   string `json:"device_state"`
}

// Describe renders a snapshot for get_status.
func (s Snapshot) Describe(alias string) ([]LockspaceStatus, *MultipathStatus) {
	ls := []LockspaceStatus{} // [] rather than null for callers that iterate
	for vg, l := range s.Lockspaces {
		st := LockspaceStatus{VG: vg, Lockspace: l.Name, State: string(l.State()), HostID: l.HostID,
			RenewalAgeSeconds: l.RenewalAge.Seconds(), IOTimeout: l.IOTimeout}
		for _, m := range l.Locks {
			if m == sanlock.ModeEx {
				st.LocksExclusive++
			} else if m == sanlock.ModeSh {
				st.LocksShared++
			}
		}
		ls = append(ls, st)
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].VG < ls[j].VG })
	if alias == "" {
		return ls, nil
	}
	mp := &MultipathStatus{Alias: alias, Paths: []PathStatus{}}
	if s.Map != nil {
		mp.Present, mp.Queueing = true, s.Map.Queueing
		for _, p := range s.Map.Paths() {
			mp.Paths = append(mp.Paths, PathStatus{Device: p.Dev, DMState: p.DMState, Checker: p.CheckerState, State: p.DevState})
		}
		mp.PathsTotal, mp.PathsActive = len(s.Map.Paths()), len(s.Map.ActivePaths())
	}
	return ls, mp
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
