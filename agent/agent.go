// Package agent is the daemon: config → logger → metrics → host clients →
// monitor → volume service → RPC server, with systemd readiness, a health
// loop feeding the watchdog, and graceful shutdown.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aos-agent/aos-agent/agent/api"
	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
	"github.com/aos-agent/aos-agent/systemd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Options are what the daemon takes besides its config; tests and the demo
// inject a simulated host through Runner.
type Options struct {
	Version string
	Runner  run.Runner // nil means the real host (run.Local)
	Logger  *zap.Logger
	// PollInterval of the host monitor; 0 means 5 s.
	PollInterval time.Duration
	// Ready, if set, is closed when the daemon reports READY.
	Ready chan<- struct{}
	// Now is the wall clock get_host_facts reports; nil means time.Now
	// (the simulator plants a host whose clock is off).
	Now func() time.Time
}

// fenceGuardWait bounds how long a refresh waits for a running fence,
// which holds the fence lock for its steps (well under a minute).
const fenceGuardWait = time.Minute

// Daemon is one running agent.
type Daemon struct {
	cfg      *config.Config
	opts     Options
	log      *zap.Logger
	reg      *prometheus.Registry
	runner   run.Runner
	monitor  *Monitor
	volumes  *volumes.Service
	lvm      *lvm.Client
	server   *rpc.Server
	client   *rpc.Client
	notifier notifier
	// petEvery is how often systemd wants WATCHDOG=1; 0 without a watchdog.
	petEvery time.Duration
	ready    atomic.Bool
	readyG   prometheus.Gauge
	lvmVer   func() string // read once, on the first ping: not on the boot path
	auto     *autoRecovery // nil unless [recovery] mode = auto
	held     *heldReconciler
	// lastStatus is the last STATUS sent, so a long outage logs its change
	// of state, not every poll (health runs on one goroutine).
	lastStatus string
}

// notifier is what the daemon tells systemd (a *systemd.Notifier); tests
// record it.
type notifier interface {
	Ready() error
	Status(string) error
	Stopping() error
	Watchdog() error
}

// New builds a daemon from cfg; nothing runs until Run.
func New(cfg *config.Config, opts Options) (*Daemon, error) {
	sd := systemd.NewNotifier()
	d := &Daemon{cfg: cfg, opts: opts, reg: prometheus.NewRegistry(), notifier: sd}
	d.log = opts.Logger
	if d.log == nil {
		var err error
		if d.log, _, err = NewLogger(cfg.LogLevel, os.Stderr, d.reg); err != nil {
			return nil, err
		}
	}
	for _, vg := range cfg.LVM.VolumeGroups {
		if err := lvm.ValidateVGName(vg); err != nil {
			return nil, fmt.Errorf("[lvm] volume_groups: %w", err)
		}
	}
	d.lvmVer = sync.OnceValue(d.lvmVersion)
	d.runner = opts.Runner
	if d.runner == nil {
		d.runner = &run.Local{DefaultTimeout: cfg.LVM.CommandTimeout}
	}
	timeout := cfg.LVM.CommandTimeout
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aos_build_info", Help: "Always 1; labels carry the agent version.",
		ConstLabels: prometheus.Labels{"version": opts.Version}})
	build.Set(1)
	d.readyG = prometheus.NewGauge(prometheus.GaugeOpts{Name: "aos_ready", Help: "1 once lockspaces are started and the RPC consumer is up."})
	d.reg.MustRegister(build, d.readyG, newHostInfo(d))

	interval := opts.PollInterval
	if interval == 0 {
		interval = 5 * time.Second
	}
	// A poll runs on the loop that pets the watchdog, so its probes get a
	// third of the pet interval: a hung one is reported as such and the pet
	// still goes out long before systemd gives up (at twice the interval).
	probeTimeout := timeout
	if every, ok := sd.WatchdogInterval(); ok {
		d.petEvery = every
		probeTimeout = min(timeout, every/3)
	}
	d.monitor = &Monitor{
		Sanlock: sanlock.New(d.runner, timeout), LockCtl: sanlock.NewLockCtl(d.runner, timeout),
		Multipath: multipath.New(d.runner, timeout), Alias: cfg.LVM.MultipathAlias,
		VGs: cfg.LVM.VolumeGroups, Interval: interval, ProbeTimeout: probeTimeout, Log: d.log.Named("monitor"),
	}
	if err := d.monitor.Register(d.reg); err != nil {
		return nil, err
	}
	held, err := state.OpenHeld(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	transient, err := state.OpenTransient(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d.lvm = lvm.New(d.runner, lvm.Options{VolumeGroups: cfg.LVM.VolumeGroups, Timeout: timeout, LockStartTimeout: cfg.LVM.LockStartTimeout})
	d.volumes, err = volumes.New(d.lvm, d.monitor.LockCtl, volumes.CommandWiper{Runner: d.runner}, held, volumes.Options{
		VolumeGroups: cfg.LVM.VolumeGroups, AllowedNames: cfg.LVM.AllowedNames, CopySlots: cfg.LVM.MaxCopies, Logger: d.log.Named("volumes"),
		Gate: d.gate, Transient: transient,
		FenceGuard: func(ctx context.Context, vg string) (func(), error) {
			// A fence holds it for a few seconds; a request's own
			// deadline bounds the wait as well.
			return d.recoveryDeps().LockFence(ctx, vg, fenceGuardWait)
		},
	})
	if err != nil {
		return nil, err
	}
	rcfg := cfg.RPC()
	rcfg.Logger, rcfg.Registerer = d.log.Named("rpc"), d.reg
	if d.client, err = rpc.NewClient(rcfg); err != nil {
		return nil, err
	}
	disp, err := api.New(api.Options{
		Volumes: d.volumes, Ping: d.ping, Status: d.status, Facts: d.facts, Broadcast: d.broadcast,
		Logger: d.log.Named("api"),
	})
	if err != nil {
		return nil, err
	}
	if d.server, err = rpc.NewServer(rcfg, disp); err != nil {
		return nil, err
	}
	inRecovery := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aos_recovery_in_progress",
		Help: "1 while a VG of this host is fenced after losing its lease storage and not yet recovered."},
		func() float64 { return b2f(len(d.recoveries()) > 0) })
	unkillable := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aos_commands_unkillable",
		Help: "Host commands that did not exit after the SIGKILL of their timeout (uninterruptible sleep, e.g. I/O to dead storage), " +
			"given up on and still waited for; each may hold a device or an LVM lock."},
		func() float64 { return float64(run.Unkillable()) })
	d.reg.MustRegister(inRecovery, unkillable)
	if cfg.Recovery.Mode == "auto" {
		d.auto = newAutoRecovery(d.recoveryDeps(), d.log.Named("recovery"), d.reg)
	}
	d.held = newHeldReconciler(d.volumes, d.log.Named("held"), d.reg)
	return d, nil
}

// Registry exposes the daemon's metrics (tests, the demo).
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Run serves until ctx ends. READY=1 is sent once every configured VG's
// lockspace is joined and the RPC consumer is up; until then STATUS= says
// what it waits for.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.client.Close()
	d.settleEarlierBoots()
	// Before serving: a request a crash or kill interrupted may have left
	// an LV active (a clone's source, a wipe) that nothing will release.
	if err := d.volumes.Reconcile(ctx); err != nil {
		d.log.Error("LVs left active by interrupted requests could not all be released", zap.Error(err))
	}
	var httpSrv *http.Server
	if d.cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", d.cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("[metrics] listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if !d.ready.Load() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go httpSrv.Serve(ln)
		d.log.Info("metrics listening", zap.String("addr", ln.Addr().String()))
	}
	// The broker connection is started first: READY waits for it and for the
	// first poll, and the boot measure (lockspace joined → dependents) is the
	// slower of the two, not their sum. The health loop runs while the
	// broker is still unreachable: a fenced VG must be recovered, and its
	// state reported, whatever the broker does. Start retries until
	// connected and fails only when ctx ends.
	started := make(chan error, 1)
	go func() { started <- d.server.Start(ctx) }()
	d.notifier.Status("connecting to the message broker")
	if !d.healthLoop(ctx, started) {
		<-started // returns once ctx is done: Stop must not race a late connect
	}
	if d.auto != nil {
		d.auto.wait() // a recovery in flight stops at its next step (ctx is done)
	}
	d.notifier.Stopping()
	d.notifier.Status("stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := d.server.Stop(stopCtx)
	if httpSrv != nil {
		httpSrv.Shutdown(stopCtx)
	}
	d.log.Info("agent stopped")
	return err
}

// healthLoop polls every poll interval until ctx ends, and reports whether
// started (the RPC server's Start) has returned. With a watchdog it also
// pets every petEvery between polls, which a poll interval longer than that
// needs; the pets come from this loop, so a wedged loop still stops them.
func (d *Daemon) healthLoop(ctx context.Context, started <-chan error) bool {
	d.health(ctx, d.monitor.Poll(ctx))
	poll := time.NewTicker(d.monitor.Interval)
	defer poll.Stop()
	var pet <-chan time.Time
	if d.petEvery > 0 {
		t := time.NewTicker(d.petEvery)
		defer t.Stop()
		pet = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return started == nil
		case <-started:
			started = nil // connected; the server reconnects by itself from now on
			d.health(ctx, d.monitor.Last())
		case <-poll.C:
			d.health(ctx, d.monitor.Poll(ctx))
		case <-pet:
			d.notifier.Watchdog()
		}
	}
}

// health derives readiness and STATUS from a snapshot and starts automatic
// recovery. READY waits for every VG's lockspace, except a VG under a fence
// journal: only a running agent can recover it. The watchdog guards the
// agent's own loop, not the SAN: every completed poll pets it (a poll is
// bounded, a hung probe is reported hung), so a wedged loop gets the agent
// restarted, while a lost lockspace, a hung or dead daemon or a broker
// outage (a restart fixes none of them) leaves it up to report, refuse and
// recover instead of restart-looping into systemd's start limit.
func (d *Daemon) health(ctx context.Context, s Snapshot) {
	journals := d.recoveries()
	if d.auto != nil {
		// Recovery needs neither READY nor the broker.
		d.auto.consider(ctx, s, journals)
	}
	fenced := map[string]bool{}
	for _, j := range journals {
		fenced[j.VG] = true
	}
	var waiting, problems []string
	for _, vg := range d.cfg.LVM.VolumeGroups {
		switch st := s.LockspaceState(vg); {
		case st == sanlock.StateJoined || st == sanlock.StateWarning:
			if !fenced[vg] { // recovery owns held.json until it ends
				d.held.start(ctx, vg)
			}
		case fenced[vg]:
			problems = append(problems, fmt.Sprintf("VG %s fenced, recovery pending", vg))
		default:
			waiting = append(waiting, fmt.Sprintf("lockspace %s %s", vg, st))
		}
	}
	for _, c := range s.Hung() {
		problems = append(problems, c+" probe hung")
	}
	if !d.server.Connected() {
		waiting = append(waiting, "message broker disconnected")
	}
	if len(waiting) == 0 && !d.ready.Swap(true) {
		d.readyG.Set(1)
		d.notifier.Ready()
		d.log.Info("agent ready", zap.Strings("volume_groups", d.cfg.LVM.VolumeGroups))
		if d.opts.Ready != nil {
			close(d.opts.Ready)
		}
	}
	d.notifier.Watchdog()
	if !d.ready.Load() {
		d.notifier.Status("waiting: " + strings.Join(append(waiting, problems...), "; "))
		return
	}
	status := "serving " + strings.Join(d.cfg.LVM.VolumeGroups, ",")
	if all := append(waiting, problems...); len(all) > 0 {
		status = "degraded: " + strings.Join(all, "; ")
		if status != d.lastStatus {
			d.log.Warn("agent degraded", zap.Strings("problems", all))
		}
	} else if d.lastStatus != "" && d.lastStatus != status {
		d.log.Info("agent serving", zap.Strings("volume_groups", d.cfg.LVM.VolumeGroups))
	}
	d.notifier.Status(status)
	d.lastStatus = status
}

// recoveryDeps is what recovery needs on this host, as the kill hook and
// `aos-agent recover` see it too.
func (d *Daemon) recoveryDeps() recovery.Deps {
	return recovery.Deps{Runner: d.runner, StateDir: d.cfg.StateDir, RuntimeDir: d.cfg.RuntimeDir,
		MultipathAlias: d.cfg.LVM.MultipathAlias, LibvirtURI: d.cfg.Recovery.LibvirtURI, LockStartTimeout: d.cfg.LVM.LockStartTimeout,
		Log: func(format string, a ...any) { d.log.Named("recovery").Sugar().Infof(format, a...) }}
}

// settleEarlierBoots retires the journals of fences from an earlier boot
// (lockstart does it first at boot; the agent again for hosts without the
// lock-start unit): the reboot undid those fences, and a fence-failed one
// would gate every change forever.
func (d *Daemon) settleEarlierBoots() {
	boot := recovery.CurrentBootID()
	for _, vg := range d.cfg.LVM.VolumeGroups {
		j, err := recovery.SettleEarlierBoot(d.cfg.StateDir, d.cfg.RuntimeDir, vg, boot)
		switch {
		case err != nil:
			d.log.Error("cannot settle a recovery journal of an earlier boot", zap.String("vg", vg), zap.Error(err))
		case j != nil:
			d.log.Warn("fence of an earlier boot settled by the reboot: journal kept aside",
				zap.String("vg", vg), zap.String("phase", string(j.Phase)), zap.Time("fenced", j.Started),
				zap.String("kept", recovery.EarlierBootPath(d.cfg.StateDir, vg)))
		}
	}
}

// recoveries returns the recovery journals present: a VG fenced by the
// kill hook stays in recovery until its journal is removed.
func (d *Daemon) recoveries() []*recovery.Journal {
	var out []*recovery.Journal
	for _, vg := range d.cfg.LVM.VolumeGroups {
		j, ok, err := recovery.FindJournal(d.cfg.StateDir, d.cfg.RuntimeDir, vg)
		if err != nil {
			// An unreadable journal still means a fence happened.
			d.log.Error("cannot read recovery journal", zap.String("vg", vg), zap.Error(err))
			j, ok = &recovery.Journal{VG: vg, Phase: "unreadable"}, true
		}
		if ok {
			out = append(out, j)
		}
	}
	return out
}

// gate refuses mutating calls at once while a VG is fenced or its lease is
// lost: LVM would fail anyway, slowly, and an activation must never race the
// fence or the watchdog.
func (d *Daemon) gate() error {
	if js := d.recoveries(); len(js) > 0 {
		return errdefs.Errorf(errdefs.ErrRecoveryInProgress, "VG %s was fenced after its lease storage was lost (journal phase %s): recovery must finish first",
			js[0].VG, js[0].Phase)
	}
	snap := d.monitor.Last()
	for _, vg := range d.cfg.LVM.VolumeGroups {
		switch st := snap.LockspaceState(vg); st {
		case sanlock.StateFailed, sanlock.StateKilled:
			return errdefs.Errorf(errdefs.ErrLockspaceLost, "lockspace of VG %s is %s on this host: its lease storage is lost", vg, st)
		case sanlock.StateDropped:
			return errdefs.Errorf(errdefs.ErrLockspaceLost, "lockspace of VG %s was dropped by sanlock on this host: its lease failed while no LV was locked here; it must be started again", vg)
		}
	}
	return nil
}

func (d *Daemon) broadcast(ctx context.Context, method string, args map[string]any) error {
	return d.client.FanoutCast(ctx, method, args)
}

var lvmVersionRE = regexp.MustCompile(`LVM version:\s+(\S+)`)

func (d *Daemon) lvmVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := d.runner.Run(ctx, run.Cmd{Argv: []string{"lvm", "version"}, Timeout: 10 * time.Second})
	if err != nil {
		d.log.Warn("cannot read lvm version", zap.Error(err))
		return ""
	}
	if m := lvmVersionRE.FindSubmatch(res.Stdout); m != nil {
		return string(m[1])
	}
	return ""
}

func (d *Daemon) hostID() uint64 {
	for _, l := range d.monitor.Last().Lockspaces {
		if l.HostID != 0 {
			return l.HostID
		}
	}
	return 0
}

func (d *Daemon) now() time.Time {
	if d.opts.Now != nil {
		return d.opts.Now()
	}
	return time.Now()
}

func (d *Daemon) ping(ctx context.Context) (any, error) {
	return map[string]any{
		"host": d.cfg.Host, "host_id": d.hostID(), "agent_version": d.opts.Version,
		"lvm_version": d.lvmVer(), "volume_groups": d.cfg.LVM.VolumeGroups, "ready": d.ready.Load(),
	}, nil
}

func (d *Daemon) status(ctx context.Context) (any, error) {
	snap := d.monitor.Poll(ctx)
	ls, mp := snap.Describe(d.cfg.LVM.MultipathAlias)
	errs := map[string]string{}
	for c, err := range snap.Errors {
		errs[c] = err.Error()
	}
	// lvs and vgs read the LUN: with I/O queued on a map without paths each
	// would hang for the command timeout, and the driver's stats call with
	// them. They share the probes' bound; what they could not read is
	// reported in collector_errors.
	lvmCtx := ctx
	if d.monitor.ProbeTimeout > 0 {
		var cancel context.CancelFunc
		lvmCtx, cancel = context.WithTimeout(ctx, d.monitor.ProbeTimeout)
		defer cancel()
	}
	vols := []volumes.Volume{} // [] rather than null for callers that iterate
	for _, vg := range d.cfg.LVM.VolumeGroups {
		all, err := d.volumes.List(lvmCtx, vg)
		if err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("status: cannot list volumes", zap.String("vg", vg), zap.Error(err))
			errs["lvs_"+vg] = err.Error()
			continue
		}
		for _, v := range all {
			if v.ActiveHere {
				vols = append(vols, v)
			}
		}
	}
	// The VG's size and free space, for the driver's capacity stats.
	capacity := []VGCapacity{}
	if vgs, err := d.lvm.VGs(lvmCtx); err != nil {
		errs["vgs"] = err.Error()
	} else {
		for _, vg := range vgs {
			capacity = append(capacity, VGCapacity{VG: vg.Name, SizeBytes: vg.Size, FreeBytes: vg.Free})
		}
	}
	return map[string]any{
		"host": d.cfg.Host, "host_id": d.hostID(), "ready": d.ready.Load(),
		"lockspaces": ls, "multipath": mp, "active_volumes": vols, "collector_errors": errs,
		"recovery": d.recoveryStatus(), "capacity": capacity, "held_reconciliation": d.held.status(),
	}, nil
}

// VGCapacity is get_status' view of a VG's space.
type VGCapacity struct {
	VG        string `json:"volume_group"`
	SizeBytes uint64 `json:"size_bytes"`
	FreeBytes uint64 `json:"free_bytes"`
}

// recoveryStatus is get_status' view of fenced VGs: "idle", or the fence
// journals with what was taken offline.
func (d *Daemon) recoveryStatus() map[string]any {
	js := d.recoveries()
	if len(js) == 0 {
		return map[string]any{"state": "idle"}
	}
	return map[string]any{"state": "fenced", "journals": js}
}
