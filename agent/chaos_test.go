package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/scenario"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
	"go.uber.org/zap"
)

// Randomized fault schedules through the real agent code on the simulator
// (issue 15): several hosts share a VG, each with its daemon (volume service,
// health loop, automatic recovery) and the kill hook as lvmlockctl's kill
// command; a schedule mixes the driver's calls with path and lease-storage
// loss and return, I/O stalls, time passing, health polls, agent restarts
// (also between an lvchange and its record in held.json), VMs, and replies
// lost to a broker restart (the driver retries the call). After
// every step the checker looks at every host's device-mapper tables and
// lvmlockd locks for the one thing that must never happen: an LV writable on
// two hosts at once, or on a host without its lock while another host holds
// it; for a VM resumed on data another host may have written meanwhile; and
// for a retried call that fails, or changes anything, after its first
// answer was ok (every call has its effect once).
// At the end, with storage back everywhere, every recovery must finish.
//
// CHAOS_RUNS sets the number of schedules (make chaos; the test command runs
// the default), CHAOS_SEED the first seed. A violation is shrunk to a minimal
// schedule and printed with its seed, also as a definition for the shared
// scenario runner, which the lab runs as it stands (chaosDefinition).

const (
	chaosIOTimeout = 10 * time.Second
	chaosVG        = "vol"
)

// chaosStep is one step of a schedule.
type chaosStep struct {
	Op   string `json:"op"`
	Host int    `json:"host,omitempty"`
	To   int    `json:"to,omitempty"` // hand-off destination
	LV   int    `json:"lv,omitempty"`
	// At is the command a fault-inside step waits for on the host: the
	// lease is lost again right after it ran (inside a recovery step).
	At   string                `json:"at,omitempty"`
	Mode volumes.RequestedMode `json:"mode,omitempty"`
	For  time.Duration         `json:"for,omitempty"`
	// Retry: the call's reply is lost (a broker restart) and the driver
	// sends it again, as oslo.messaging's caller does after its timeout.
	Retry bool `json:"retry,omitempty"`
}

func (s chaosStep) String() string {
	switch s.Op {
	case "advance":
		return fmt.Sprintf("advance %v", s.For)
	case "handoff":
		return fmt.Sprintf("h%d handoff lv%d to h%d", s.Host+1, s.LV, s.To+1)
	case "stall-io":
		return fmt.Sprintf("h%d stall-io %v", s.Host+1, s.For)
	}
	out := fmt.Sprintf("h%d %s", s.Host+1, s.Op)
	if s.LV > 0 {
		out += fmt.Sprintf(" lv%d", s.LV)
	}
	if s.Mode != "" {
		out += " " + string(s.Mode)
	}
	if s.Retry {
		out += " (reply lost: retried)"
	}
	return out
}

// retriable are the driver's single calls, whose replies a broker restart
// can lose.
var retriable = []string{"create", "activate", "deactivate", "refresh", "extend", "delete", "snapshot", "delete-snapshot"}

// chaosSchedule draws a schedule of n steps over hosts hosts and lvs LVs.
func chaosSchedule(r *rand.Rand, hosts, lvs, n int) []chaosStep {
	ops := []struct {
		op     string
		weight int
	}{
		{"create", 6}, {"activate", 14}, {"deactivate", 8}, {"handoff", 4}, {"refresh", 5}, {"extend", 3},
		{"delete", 3}, {"snapshot", 2}, {"delete-snapshot", 2}, {"open", 4}, {"close", 2}, {"poll", 14},
		{"advance", 12}, {"fail-paths", 3}, {"lose-lease", 2}, {"stall-io", 2}, {"restore", 5}, {"restart", 3},
		{"fault-inside", 3}, {"crash-after-lvchange", 3},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	var out []chaosStep
	for range n {
		pick := r.IntN(total)
		op := ops[0].op
		for _, o := range ops {
			if pick < o.weight {
				op = o.op
				break
			}
			pick -= o.weight
		}
		s := chaosStep{Op: op, Host: r.IntN(hosts), LV: 1 + r.IntN(lvs)}
		s.Retry = slices.Contains(retriable, op) && r.IntN(6) == 0
		switch op {
		case "activate":
			s.Mode = volumes.Exclusive
			if r.IntN(3) == 0 {
				s.Mode = volumes.Shared
			}
		case "crash-after-lvchange":
			s.Mode = []volumes.RequestedMode{volumes.Exclusive, volumes.Shared, ""}[r.IntN(3)]
		case "handoff":
			s.To = (s.Host + 1 + r.IntN(hosts-1)) % hosts
		case "advance":
			s.Host, s.LV = 0, 0
			s.For = []time.Duration{5 * time.Second, 30 * time.Second, 90 * time.Second, 3 * time.Minute}[r.IntN(4)]
		case "stall-io":
			// Short enough for the lease to survive, or long enough to fail it.
			s.LV = 0
			s.For = []time.Duration{chaosIOTimeout, 4 * chaosIOTimeout, 10 * chaosIOTimeout}[r.IntN(3)]
		case "poll", "fail-paths", "lose-lease", "restore", "restart":
			s.LV = 0
		case "fault-inside":
			s.LV = 0
			s.At = faultPoints[r.IntN(len(faultPoints))]
		}
		out = append(out, s)
	}
	return out
}

// chaosWorld is one cluster running one schedule.
type chaosWorld struct {
	t      testing.TB
	clock  *sim.ManualClock
	c      *sim.Cluster
	hosts  []*chaosHost
	broken breakage // what the checker's self-checks break
	// heldAt: for each LV, each host's last observation of holding it
	// exclusively.
	heldAt map[string]map[string]time.Time
	// violation is one found while a step ran (held.json after a restart).
	violation string
	// trace is what the steps did, as steps of the shared scenario format
	// (host "h<N>" is hosts[N-1]).
	trace []scenario.Step
}

// faultPoints are commands of the fence and of recovery's steps after which
// a fault-inside step loses the host's lease again.
var faultPoints = []string{"vgchange --lock-start", "lvchange -aey", "lvchange -asy", "lvchange --refresh", "virsh -c qemu:///system resume",
	"dmsetup --noudevsync wipe_table", "multipathd restorequeueing"}

type chaosHost struct {
	name string
	cfg  *config.Config
	d    *Daemon
	// armed is the fault point waited for ("" for none).
	armed string
	// pausedAt is when each of this host's VMs was last seen paused.
	pausedAt map[string]time.Time
	// pathsDown: paths or lease storage lost and not restored since.
	pathsDown bool
	// renewalDue is when the host's lease renewal fails if storage does
	// not come back first (zero: no fault under way).
	renewalDue time.Time
	// faultCame: the fault a fault-inside step armed came during the
	// current step.
	faultCame bool
	// restarted: the agent started and has not yet reconciled held.json
	// with lvmlockd (it does once the lockspace is joined and no fence
	// journal is left).
	restarted bool
}

// breakage is a deliberate defect for the checker's self-checks: the checker
// must find a violation when the agent is broken this way.
type breakage string

const (
	intact breakage = ""
	// brokenFence: the kill hook claims the LVs are offline and does nothing.
	brokenFence breakage = "fence"
	// brokenReconcile: a restarted agent's held.json reconciliation claims
	// success and changes nothing.
	brokenReconcile breakage = "reconcile"
	// brokenExtend: the agent extends by the size asked (lvextend -L +N)
	// instead of to it, so a retried extend grows the volume again.
	brokenExtend breakage = "extend"
)

func newChaosWorld(t testing.TB, hosts int, broken breakage) *chaosWorld {
	w := &chaosWorld{t: t, clock: sim.NewManualClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)), broken: broken,
		heldAt: map[string]map[string]time.Time{}}
	specs := make([]sim.HostSpec, hosts)
	for i := range specs {
		specs[i] = sim.HostSpec{Name: fmt.Sprintf("h%d", i+1), HostID: i + 1}
	}
	w.c = sim.NewCluster(sim.Options{Hosts: specs, VG: chaosVG, Clock: w.clock, IOTimeout: chaosIOTimeout, JoinTime: -1,
		PVSize: 64 << 30, RunKill: w.killHook})
	for _, spec := range specs {
		h := &chaosHost{name: spec.Name, pausedAt: map[string]time.Time{}}
		h.cfg = config.Default()
		h.cfg.Host, h.cfg.StateDir = spec.Name, t.TempDir()
		h.cfg.RuntimeDir = h.cfg.StateDir
		h.cfg.LVM.VolumeGroups, h.cfg.LVM.MultipathAlias = []string{chaosVG}, "lun0"
		h.cfg.Metrics.Listen = ""
		h.cfg.TransportURL = "rabbit://guest:guest@127.0.0.1:1/" // no broker: recovery needs none
		// Simulated commands answer at once; one that hangs (I/O queued on a
		// map without paths) is cut short in real time.
		h.cfg.LVM.CommandTimeout = 50 * time.Millisecond
		h.cfg.LVM.LockStartTimeout = h.cfg.LVM.CommandTimeout
		w.hosts = append(w.hosts, h)
		w.c.SetKillCommand(spec.Name, []string{"/usr/sbin/aos-agent", "kill-hook"})
		w.lvm(spec.Name, "vgchange", "--lock-start", chaosVG)
		w.start(h)
	}
	return w
}

// killHook is lvmlockctl running the configured kill command on a host.
func (w *chaosWorld) killHook(host string, argv []string) int {
	if w.broken == brokenFence {
		return 0 // "the LVs are offline", and nothing was done
	}
	h := w.host(host)
	_, err := recovery.Fence(context.Background(), recovery.Deps{Runner: w.c.Host(host), StateDir: h.cfg.StateDir,
		RuntimeDir: h.cfg.RuntimeDir, MultipathAlias: "lun0", StepTimeout: h.cfg.LVM.CommandTimeout}, argv[len(argv)-1])
	if err != nil {
		return 1
	}
	return 0
}

func (w *chaosWorld) host(name string) *chaosHost {
	for _, h := range w.hosts {
		if h.name == name {
			return h
		}
	}
	panic("unknown host " + name)
}

// start runs the agent on h: a new process, with what its state directory
// kept.
func (w *chaosWorld) start(h *chaosHost) {
	host := w.c.Host(h.name)
	runner := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		if c.Timeout == 0 {
			c.Timeout = h.cfg.LVM.CommandTimeout // as run.Local's DefaultTimeout
		}
		if w.broken == brokenExtend && c.Argv[0] == "lvextend" {
			c.Argv = slices.Clone(c.Argv)
			c.Argv[2] = "+" + c.Argv[2]
		}
		res, err := host.Run(ctx, c)
		if h.armed != "" && strings.HasPrefix(strings.Join(c.Argv, " "), h.armed) {
			h.armed = ""
			// The lab's lease storage is on the LUN: there the paths go too,
			// and the step's trace awaits the fence.
			h.pathsDown, h.renewalDue, h.faultCame = true, time.Time{}, true
			w.c.FailLeaseStorage(h.name)
			w.clock.Advance(8 * chaosIOTimeout) // renewal fails: the kill hook fences
		}
		return res, err
	})
	d, err := New(h.cfg, Options{Runner: runner, Logger: zap.NewNop(), PollInterval: time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	d.auto.now = w.clock.Now // retries back off in simulated time
	if w.broken == brokenReconcile {
		d.held.reconcile = func(context.Context, string) ([]volumes.HeldDifference, error) { return nil, nil }
	}
	d.auto.deps.StepTimeout = h.cfg.LVM.CommandTimeout
	d.settleEarlierBoots()
	_ = d.volumes.Reconcile(context.Background())
	h.d, h.restarted = d, true
}

// heldCheckable: the host's lockspace is joined and no fence journal is
// left, when a restarted agent must reconcile held.json with lvmlockd.
func (w *chaosWorld) heldCheckable(h *chaosHost) bool {
	if !w.c.State(h.name).LockspaceJoined {
		return false
	}
	_, fenced, _ := recovery.FindJournal(h.cfg.StateDir, h.cfg.RuntimeDir, chaosVG)
	return !fenced
}

// checkHeldAfterRestart runs after a poll that found the host checkable
// before and after: a restarted agent must have reconciled, and held.json
// is then exactly the LV locks lvmlockd holds on its host. A run that
// failed (lvs timed out on lost paths) is tried again at the next poll;
// strict (storage back, at the end) it must have succeeded.
func (w *chaosWorld) checkHeldAfterRestart(h *chaosHost, strict bool) {
	if !h.restarted {
		return
	}
	rec := h.d.held.status()[chaosVG]
	switch {
	case rec.At.IsZero() && rec.Error == "":
		w.violation = fmt.Sprintf("%s: restarted, joined and not fenced, yet held.json was not reconciled", h.name)
		return
	case rec.Error != "" && strict:
		w.violation = fmt.Sprintf("%s: held.json still not reconciled with storage back: %s", h.name, rec.Error)
		return
	case rec.Error != "":
		return
	}
	h.restarted = false
	held, err := state.OpenHeld(h.cfg.StateDir)
	if err != nil {
		w.violation = fmt.Sprintf("%s: held.json unreadable after a restart: %v", h.name, err)
		return
	}
	recorded := map[string]string{}
	for _, r := range held.List() {
		recorded[r.LV] = string(r.Mode)
	}
	if locks := w.c.State(h.name).Locks; !maps.Equal(recorded, locks) {
		w.violation = fmt.Sprintf("%s: after a restart held.json records %v while lvmlockd holds %v", h.name, recorded, locks)
	}
}

func (w *chaosWorld) lvm(host string, argv ...string) error {
	_, err := w.c.Host(host).Run(context.Background(), run.Cmd{Argv: argv})
	return err
}

func lvName(i int) string { return fmt.Sprintf("volume-%d", i) }

// snapName is cinder's form of a snapshot LV's name (LVM reserves names
// that start with "snapshot").
func snapName(i int) string { return fmt.Sprintf("_snapshot-%d", i) }

// effects is what a call can change: every host's tables, locks and VMs,
// the VG's LVs, and the calling host's held.json.
type effects struct {
	States  map[string]sim.HostState
	Volumes map[string]sim.Volume
	Held    []state.HeldLV
}

func (w *chaosWorld) effects(h *chaosHost) effects {
	e := effects{States: map[string]sim.HostState{}, Volumes: w.c.Volumes()}
	for _, o := range w.hosts {
		e.States[o.name] = w.c.State(o.name)
	}
	if held, err := state.OpenHeld(h.cfg.StateDir); err == nil {
		e.Held = held.List()
	}
	return e
}

// call runs one of the driver's calls; with s.Retry and an ok answer, its
// reply is lost and the call comes again: it must answer ok and change
// nothing. A lease fault injected inside either run changes the world, and
// a command cut short by the harness's real-time bound is no answer, so the
// retry is not judged then.
func (w *chaosWorld) call(s chaosStep, h *chaosHost, as scenario.Step, do func() error) {
	armed := h.armed
	w.trace = append(w.trace, as)
	if err := do(); err != nil || !s.Retry || h.armed != armed {
		return
	}
	before := w.effects(h)
	w.trace = append(w.trace, as)
	err := do()
	if h.armed != armed || errors.Is(err, errdefs.ErrCommandTimeout) {
		return
	}
	if err != nil {
		w.violation = fmt.Sprintf("%s: answered ok, then its retry failed: %v", s, err)
		return
	}
	if after := w.effects(h); !reflect.DeepEqual(before, after) {
		w.violation = fmt.Sprintf("%s: the retry changed the world:\nbefore %+v\nafter  %+v", s, before, after)
	}
}

// apply runs one step; failures of the driver's calls are expected (locks
// held elsewhere, recovery in progress), only the checker judges.
func (w *chaosWorld) apply(s chaosStep) {
	ctx := context.Background()
	h := w.hosts[s.Host]
	svc := h.d.volumes
	ref := volumes.Ref{VG: chaosVG, LV: lvName(s.LV)}
	snap := volumes.Ref{VG: chaosVG, LV: snapName(s.LV)}
	ignore := func(_ any, err error) error { return err }
	as := scenario.Step{Host: fmt.Sprintf("h%d", s.Host+1), LV: ref.LV}
	trace := func(op string) { as.Op = op; w.trace = append(w.trace, as) }
	switch s.Op {
	case "create":
		as.Op, as.SizeGiB = scenario.OpCreate, 1
		w.call(s, h, as, func() error { return ignore(svc.Create(ctx, ref, 1)) })
	case "activate":
		as.Op, as.Mode = scenario.OpActivate, string(s.Mode)
		w.call(s, h, as, func() error { return ignore(svc.Activate(ctx, ref, s.Mode)) })
	case "deactivate":
		as.Op = scenario.OpDeactivate
		w.call(s, h, as, func() error { return svc.Deactivate(ctx, ref) })
	case "handoff":
		// nova's live migration: destination shared, source shared, source
		// released, destination exclusive.
		dst := w.hosts[s.To].d.volumes
		to := scenario.Step{Host: fmt.Sprintf("h%d", s.To+1), Op: scenario.OpActivate, LV: ref.LV, Mode: string(volumes.Shared)}
		w.trace = append(w.trace, to)
		if _, err := dst.Activate(ctx, ref, volumes.Shared); err != nil {
			return
		}
		as.Mode = string(volumes.Shared)
		trace(scenario.OpActivate)
		if _, err := svc.Activate(ctx, ref, volumes.Shared); err != nil {
			return
		}
		as.Mode = ""
		trace(scenario.OpDeactivate)
		if err := svc.Deactivate(ctx, ref); err != nil {
			return
		}
		to.Mode = string(volumes.Exclusive)
		w.trace = append(w.trace, to)
		_, _ = dst.Activate(ctx, ref, volumes.Exclusive)
	case "refresh":
		as.Op = scenario.OpRefresh
		w.call(s, h, as, func() error { return ignore(svc.Refresh(ctx, ref)) })
	case "extend":
		as.Op, as.SizeGiB = scenario.OpExtend, 2
		w.call(s, h, as, func() error { return ignore(svc.Extend(ctx, ref, 2)) })
	case "delete":
		as.Op = scenario.OpDelete
		w.call(s, h, as, func() error { return ignore(svc.Delete(ctx, ref, volumes.ClearNone, 0)) })
	case "snapshot":
		as = scenario.Step{Host: as.Host, Op: scenario.OpSnapshot, LV: snap.LV, Origin: ref.LV, SizeGiB: 1}
		w.call(s, h, as, func() error { return ignore(svc.CreateSnapshot(ctx, snap, ref.LV, 1)) })
	case "delete-snapshot":
		as.Op, as.LV = scenario.OpDeleteSnapshot, snap.LV
		w.call(s, h, as, func() error { return ignore(svc.DeleteSnapshot(ctx, snap)) })
	case "open":
		dom := "vm-" + ref.LV
		if w.c.State(h.name).Active[ref.LV] == "linear" {
			trace(scenario.OpOpen)
			w.c.DefineDomain(h.name, dom, ref.LV)
			_ = w.lvm(h.name, "virsh", "start", dom)
		}
	case "close":
		trace(scenario.OpClose)
		_ = w.lvm(h.name, "virsh", "destroy", "vm-"+ref.LV)
	case "poll":
		checkable := w.heldCheckable(h)
		journal, joined := w.recoveryState(h)
		h.d.health(ctx, h.d.monitor.Poll(ctx))
		h.d.auto.wait()
		h.d.held.wait()
		if checkable && w.heldCheckable(h) {
			w.checkHeldAfterRestart(h, false)
		}
		// A runner scenario has no health loop: what this poll set off,
		// if anything, is its step.
		switch after, joinedAfter := w.recoveryState(h); {
		case journal != "" && after != journal:
			as.LV = ""
			trace(scenario.OpRecover)
		case journal == "" && !joined && joinedAfter:
			as.LV = ""
			trace(scenario.OpRejoin)
		}
	case "advance":
		w.trace = append(w.trace, scenario.Step{Host: "h1", Op: scenario.OpWait, IOTimeouts: ioTimeouts(s.For)})
		w.clock.Advance(s.For)
		// Steps take real time in the lab: the fence is awaited where
		// this world's time passed it, not left to the wait's length.
		for i, o := range w.hosts {
			if !o.renewalDue.IsZero() && !o.renewalDue.After(w.clock.Now()) {
				o.renewalDue = time.Time{}
				w.trace = append(w.trace, scenario.Step{Host: fmt.Sprintf("h%d", i+1), Op: scenario.OpAwait,
					What: scenario.OpLockspace, Want: "none", Within: scenario.BoundRenewalFailure})
			}
		}
	case "fail-paths", "lose-lease":
		// The lab's lease storage is on the LUN: it loses every path.
		w.trace = append(w.trace, scenario.Step{Host: as.Host, Op: scenario.OpFailPaths, All: true})
		h.pathsDown = true
		if h.renewalDue.IsZero() {
			h.renewalDue = w.clock.Now().Add(8 * chaosIOTimeout)
		}
		if s.Op == "lose-lease" {
			w.c.FailLeaseStorage(h.name)
		} else {
			w.c.FailPaths(h.name, true)
		}
	case "stall-io":
		w.trace = append(w.trace, scenario.Step{Host: as.Host, Op: scenario.OpStallIO, IOTimeouts: ioTimeouts(s.For)})
		if s.For > 8*chaosIOTimeout && h.renewalDue.IsZero() {
			h.renewalDue = w.clock.Now().Add(8 * chaosIOTimeout)
		}
		w.c.StallIO(h.name, s.For)
	case "restore":
		w.trace = append(w.trace, scenario.Step{Host: as.Host, Op: scenario.OpRestorePaths, All: true})
		h.pathsDown, h.renewalDue = false, time.Time{}
		w.c.RestorePaths(h.name)
	case "restart":
		as.LV = ""
		trace(scenario.OpRestart)
		w.start(h)
	case "crash-after-lvchange":
		as.Op, as.Mode = scenario.OpCrashAfterLVChange, string(s.Mode)
		if s.Mode == "" {
			as.Mode = "none"
		}
		w.trace = append(w.trace, as)
		// The agent dies between an lvchange and its record in held.json:
		// the lock is taken (or released) and not recorded.
		argv := []string{"lvchange", "-aey", chaosVG + "/" + ref.LV}
		if s.Mode == volumes.Shared {
			argv[1] = "-asy"
		} else if s.Mode == "" {
			argv[1] = "-an"
		}
		// With the paths gone the command hangs on queued I/O; the agent's
		// own timeout would cut it short.
		cctx, cancel := context.WithTimeout(ctx, h.cfg.LVM.CommandTimeout)
		_, _ = w.c.Host(h.name).Run(cctx, run.Cmd{Argv: argv})
		cancel()
		w.start(h)
	case "fault-inside":
		w.trace = append(w.trace, scenario.Step{Host: as.Host, Op: scenario.OpFaultInside, What: s.At})
		h.armed = s.At
	default:
		w.t.Fatalf("unknown step %q", s.Op)
	}
	for i, o := range w.hosts {
		if o.faultCame {
			o.faultCame = false
			w.trace = append(w.trace, scenario.Step{Host: fmt.Sprintf("h%d", i+1), Op: scenario.OpAwait,
				What: scenario.OpLockspace, Want: "none", Within: scenario.BoundRenewalFailure})
		}
	}
}

// recoveryState is the host's fence journal (its generation and phase, ""
// for none) and whether its lockspace is joined.
func (w *chaosWorld) recoveryState(h *chaosHost) (string, bool) {
	journal := ""
	if j, ok, _ := recovery.FindJournal(h.cfg.StateDir, h.cfg.RuntimeDir, chaosVG); ok {
		journal = fmt.Sprintf("%d/%s", j.Generation, j.Phase)
	}
	return journal, w.c.State(h.name).LockspaceJoined
}

// ioTimeouts is d in sanlock io_timeouts, the scenario format's unit of
// time (at least one).
func ioTimeouts(d time.Duration) int { return max(1, int((d+chaosIOTimeout/2)/chaosIOTimeout)) }

// check returns the first broken invariant, or "".
func (w *chaosWorld) check() string {
	now := w.clock.Now()
	states := map[string]sim.HostState{}
	lvs := map[string]bool{}
	if w.violation != "" {
		return w.violation
	}
	for _, h := range w.hosts {
		st := w.c.State(h.name)
		states[h.name] = st
		for lv := range st.Active {
			lvs[lv] = true
		}
		for lv, mode := range st.Locks {
			lvs[lv] = true
			// Only an exclusive holder may have written it alone; shared
			// holders coordinate (multi-attach, a migration), and recovery
			// resumes shared LVs on the re-lock alone (docs/rpc.md).
			if mode != "ex" {
				continue
			}
			if w.heldAt[lv] == nil {
				w.heldAt[lv] = map[string]time.Time{}
			}
			w.heldAt[lv][h.name] = now
		}
	}
	vols := w.c.Volumes()
	for lv := range lvs {
		// A snapshot has no lock of its own: its origin's covers it.
		lock := lv
		if o := vols[lv].Origin; o != "" {
			lock = o
		}
		var writers, holders []string
		for _, h := range w.hosts {
			st := states[h.name]
			if st.Active[lv] == "linear" {
				writers = append(writers, h.name+"("+orNone(st.Locks[lock])+")")
			}
			if st.Locks[lock] != "" {
				holders = append(holders, h.name+":"+st.Locks[lock])
			}
		}
		for _, wr := range writers {
			name, lock, _ := strings.Cut(strings.TrimSuffix(wr, ")"), "(")
			switch {
			case len(writers) > 1 && lock != "sh":
				return fmt.Sprintf("%s writable on %v at once (locks %v)", lv, writers, holders)
			case lock == "none" && len(holders) > 0:
				return fmt.Sprintf("%s writable on %s without a lock while %v hold it", lv, name, holders)
			}
		}
	}
	// A VM resumed after another host held its LV while it was paused.
	for _, h := range w.hosts {
		for dom, state := range states[h.name].Domains {
			lv := strings.TrimPrefix(dom, "vm-")
			switch state {
			case "paused":
				if _, ok := h.pausedAt[dom]; !ok {
					h.pausedAt[dom] = now
				}
			case "running":
				if since, ok := h.pausedAt[dom]; ok {
					for other, at := range w.heldAt[lv] {
						if other != h.name && !at.Before(since) {
							return fmt.Sprintf("%s on %s resumed although %s held %s exclusively while it was paused", dom, h.name, other, lv)
						}
					}
				}
				delete(h.pausedAt, dom)
			default:
				delete(h.pausedAt, dom)
			}
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// settle brings storage back everywhere and lets time pass and the agents
// poll: every fence must end in a finished recovery.
func (w *chaosWorld) settle() string {
	for _, h := range w.hosts {
		h.armed = "" // no more faults
		if h.pathsDown {
			w.apply(chaosStep{Op: "restore", Host: slices.Index(w.hosts, h)})
		}
		w.c.RestorePaths(h.name)
	}
	for range 6 {
		w.clock.Advance(time.Minute)
		for _, h := range w.hosts {
			w.apply(chaosStep{Op: "poll", Host: slices.Index(w.hosts, h)})
			if v := w.check(); v != "" {
				return v
			}
		}
	}
	for _, h := range w.hosts {
		if w.heldCheckable(h) {
			w.checkHeldAfterRestart(h, true)
			if w.violation != "" {
				return w.violation
			}
		}
		j, ok, err := recovery.FindJournal(h.cfg.StateDir, h.cfg.RuntimeDir, chaosVG)
		if err != nil || ok {
			phase := recovery.Phase("")
			if j != nil {
				phase = j.Phase
			}
			return fmt.Sprintf("recovery of %s never ended (journal phase %q, %v)", h.name, phase, err)
		}
		// Whatever ended the lockspace (a fence, or a lease lost with no
		// LV held, which fences nothing), the agent starts it again.
		if !w.c.State(h.name).LockspaceJoined {
			return fmt.Sprintf("%s: lockspace not joined after storage came back (agent sees %s)", h.name, h.d.monitor.Last().LockspaceState(chaosVG))
		}
	}
	return ""
}

// chaosDefinition plays steps on a fresh world, settles it (storage back,
// recoveries run), and returns what they did as a shared-scenario definition
// (scenario/definitions), which runs in the lab as it stands: hosts
// renumbered in order of appearance, the paths awaited after each return (a
// real map takes seconds), and at the end every VM closed and every LV
// deactivated and deleted.
// Its expectations are the scenario runner's outcomes on the simulator,
// violation the runner's writers check if it fired. The lease storage alone
// cannot be lost in the lab (it is on the LUN): a lost lease becomes every
// path lost, also inside a command (fault-inside, with the fence awaited
// after the step it came in); time is converted to io_timeouts (the lab's
// is shorter). err is a definition the converter got wrong.
func chaosDefinition(t testing.TB, name string, hosts int, steps []chaosStep, broken breakage) (def scenario.Scenario, violation string, err error) {
	w := newChaosWorld(t, hosts, broken)
	for _, s := range steps {
		w.apply(s)
	}
	w.settle()
	renamed := map[string]string{}
	lvs := []string{}
	var out, closes []scenario.Step
	for _, st := range w.trace {
		if st.Op != scenario.OpWait {
			if renamed[st.Host] == "" {
				renamed[st.Host] = fmt.Sprintf("h%d", len(renamed)+1)
			}
			st.Host = renamed[st.Host]
		}
		if st.LV != "" && !slices.Contains(lvs, st.LV) {
			lvs = append(lvs, st.LV)
		}
		out = append(out, st)
		if closing := (scenario.Step{Host: st.Host, Op: scenario.OpClose, LV: st.LV}); st.Op == scenario.OpOpen && !slices.Contains(closes, closing) {
			closes = append(closes, closing)
		}
		if st.Op == scenario.OpRestorePaths {
			out = append(out, scenario.Step{Host: st.Host, Op: scenario.OpAwait, What: scenario.OpActivePaths, Want: "2",
				Within: scenario.BoundRenewalFailure})
		}
	}
	if len(renamed) == 0 {
		renamed["h1"] = "h1"
	}
	for i := range out {
		if out[i].Op == scenario.OpWait {
			out[i].Host = "h1"
		}
	}
	// VMs first: an LV a VM keeps open cannot be deactivated.
	out = append(out, closes...)
	// Snapshots first: an origin with snapshots cannot be deleted.
	slices.SortStableFunc(lvs, func(a, b string) int {
		return strings.Compare(strings.SplitN(a, "-", 2)[0], strings.SplitN(b, "-", 2)[0])
	})
	for i := range len(renamed) {
		for _, lv := range lvs {
			out = append(out, scenario.Step{Host: fmt.Sprintf("h%d", i+1), Op: scenario.OpDeactivate, LV: lv})
		}
	}
	for _, lv := range lvs {
		op := scenario.OpDelete
		if strings.HasPrefix(lv, "_snapshot-") {
			op = scenario.OpDeleteSnapshot
		}
		out = append(out, scenario.Step{Host: "h1", Op: op, LV: lv})
	}
	def = scenario.Scenario{Name: name, Hosts: len(renamed), Setup: scenario.SetupKillHook, CheckWriters: true, Steps: out,
		Description: "A chaos schedule (agent/chaos_test.go) as the agent's steps on the shared scenario runner; expectations from the simulator."}
	if err := def.Validate(); err != nil {
		return def, "", err
	}
	// The lab's next scenario runs on the same guests, so every lockspace
	// is left joined: one that a lease loss holding nothing ended without
	// a fence (no journal, so recover leaves it) is rejoined, as the daemon
	// would.
	for i := range def.Hosts {
		def.Steps = append(def.Steps, scenario.Step{Host: fmt.Sprintf("h%d", i+1), Op: scenario.OpLockspace})
	}
	results, _ := runOnScenarioSim(t, def)
	for _, res := range results[len(results)-def.Hosts:] {
		if res.Value != "joined" {
			def.Steps = append(def.Steps, scenario.Step{Host: res.Host, Op: scenario.OpRejoin}, scenario.Step{Host: res.Host, Op: scenario.OpLockspace})
		}
	}
	results, err = runOnScenarioSim(t, def)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.Contains(line, "VIOLATION") {
				violation += strings.TrimSpace(line) + "\n"
			}
		}
	}
	return scenario.WithOutcomes(def, results), violation, nil
}

// runOnScenarioSim runs def on the shared scenario runner over a fresh
// simulated cluster at 100× real time, as the scenario package's tests do.
func runOnScenarioSim(t testing.TB, def scenario.Scenario) ([]scenario.Result, error) {
	r := &scenario.Runner{Cluster: scenario.NewSimCluster(def.Hosts, sim.NewScaledClock(time.Now(), 100), 0), StateDir: t.TempDir()}
	return r.Run(context.Background(), def)
}

// runSchedule plays steps on a fresh world and returns the first violation
// and the step it followed (-1: the final settling).
func runSchedule(t testing.TB, hosts int, steps []chaosStep, broken breakage) (string, int) {
	w := newChaosWorld(t, hosts, broken)
	for i, s := range steps {
		w.apply(s)
		if v := w.check(); v != "" {
			return v, i
		}
	}
	return w.settle(), -1
}

// shrink removes steps while a violation naming want stays (one at a time,
// then again), so what is printed is the part of the schedule that matters.
func shrink(t testing.TB, hosts int, steps []chaosStep, broken breakage, want string) []chaosStep {
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(steps); i++ {
			try := slices.Delete(slices.Clone(steps), i, i+1)
			if v, _ := runSchedule(t, hosts, try, broken); v != "" && strings.Contains(v, want) {
				steps, changed = try, true
				i--
			}
		}
	}
	return steps
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// chaosRuns plays runs schedules from seed and returns the violations whose
// text contains want ("" for any), each with its seed and shrunk schedule;
// with firstOnly it stops at the first.
func chaosRuns(t *testing.T, seed, runs int, broken breakage, want string, firstOnly bool) []string {
	var found []string
	for i := range runs {
		if firstOnly && len(found) > 0 {
			break
		}
		s := uint64(seed + i)
		r := rand.New(rand.NewPCG(s, s))
		hosts := 3 + r.IntN(6)
		steps := chaosSchedule(r, hosts, 2+r.IntN(5), 40+r.IntN(80))
		v, at := runSchedule(t, hosts, steps, broken)
		if v == "" || !strings.Contains(v, want) {
			continue
		}
		prefix := steps
		if at >= 0 {
			prefix = steps[:at+1] // nothing after the violation matters
		}
		min := shrink(t, hosts, prefix, broken, want)
		b, _ := json.MarshalIndent(struct {
			Seed  uint64      `json:"seed"`
			Hosts int         `json:"hosts"`
			Steps []chaosStep `json:"steps"`
		}{s, hosts, min}, "", "  ")
		text := fmt.Sprintf("seed %d: %s\nminimal schedule (%d of %d steps):\n%s", s, v, len(min), len(steps), b)
		def, fired, err := chaosDefinition(t, fmt.Sprintf("chaos-%d-shrunk", s), hosts, min, broken)
		switch {
		case err != nil:
			text += "\nthe converter made an invalid definition: " + err.Error()
		default:
			b, _ := json.MarshalIndent(def, "", "  ")
			if fired == "" {
				fired = "does not fire there (the agent-side break, or the daemon's timing, is not in the definition)\n"
			}
			text += fmt.Sprintf("\nas a definition for scenario/definitions/, which the lab runs as it stands; the scenario runner's writers check on the simulator: %s%s", fired, b)
		}
		found = append(found, text)
	}
	return found
}

func TestChaos(t *testing.T) {
	// go test ./... plays a few; make chaos (the test command's 15-chaos
	// stage) sets CHAOS_RUNS.
	runs, seed := envInt("CHAOS_RUNS", 20), envInt("CHAOS_SEED", 1)
	found := chaosRuns(t, seed, runs, intact, "", false)
	for _, f := range found {
		t.Error(f)
	}
	fmt.Printf("chaos: %d runs, %d violations\n", runs, len(found))
}

// The checker can fail: with a fence that claims success and does nothing
// (lvmlockctl then drops the locks while the LVs stay live), schedules find
// the split brain the kill hook exists to prevent.
func TestChaosCatchesABrokenFence(t *testing.T) {
	// From seed 18, the generator's first to catch it (the others end with
	// the lockspace never restarted: no journal, nothing to recover).
	found := chaosRuns(t, 18, 30, brokenFence, "writable", true)
	if len(found) == 0 {
		t.Fatal("30 schedules with a broken fence and no LV found writable on two hosts: the checker is blind")
	}
	t.Logf("the broken fence caught:\n%s", found[0])
}

// The held.json invariant can fail too: with a reconciliation that claims
// success and changes nothing, an agent that crashed between an lvchange and
// its record is caught disagreeing with lvmlockd.
func TestChaosCatchesABrokenReconciliation(t *testing.T) {
	found := chaosRuns(t, 1, 30, brokenReconcile, "held.json", true)
	if len(found) == 0 {
		t.Fatal("30 schedules with a reconciliation that does nothing and no held.json violation: the held.json check is blind")
	}
	t.Logf("the broken reconciliation caught:\n%s", found[0])
}

// The retry check can fail: an extend that adds instead of setting the size
// has its effect twice when its reply is lost and the driver sends it again.
func TestChaosCatchesANonIdempotentRetry(t *testing.T) {
	found := chaosRuns(t, 1, 30, brokenExtend, "retry", true)
	if len(found) == 0 {
		t.Fatal("30 schedules with an extend that is not idempotent and no retry violation: the retry check is blind")
	}
	t.Logf("the broken extend caught:\n%s", found[0])
}

// chaosLabSeed is the chaos schedule scenario/definitions holds as
// chaos-<seed>.json, which the lab runs beside the shared scenarios.
const chaosLabSeed = 154

// chaosLabSchedule draws the chaos schedule of seed for the lab's two
// hosts and two LVs (created first).
func chaosLabSchedule(seed uint64) []chaosStep {
	r := rand.New(rand.NewPCG(seed, seed))
	steps := []chaosStep{{Op: "create", LV: 1}, {Op: "create", Host: 1, LV: 2}}
	return append(steps, chaosSchedule(r, 2, 2, 24)...)
}

// Chaos schedules turned into shared-scenario definitions run on the
// scenario runner (the simulator) without a writers violation, and a second
// run on a fresh cluster gives the outcomes of the first: what a printed
// definition expects is what the lab must then see.
func TestChaosSchedulesAsScenarios(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel() // mostly waiting on simulated time
			def, fired, err := chaosDefinition(t, fmt.Sprintf("chaos-%d", seed), 2, chaosLabSchedule(seed), intact)
			if err != nil {
				t.Fatal(err)
			}
			if fired != "" {
				t.Fatalf("seed %d: %s", seed, fired)
			}
			last := map[string]string{}
			for _, st := range def.Steps {
				if st.Op == scenario.OpLockspace {
					last[st.Host] = st.Want
				}
			}
			for i := range def.Hosts {
				if h := fmt.Sprintf("h%d", i+1); last[h] != "joined" {
					t.Fatalf("seed %d: %s's lockspace is left %q: the lab's next scenario would find it so", seed, h, last[h])
				}
			}
			if _, err := runOnScenarioSim(t, def); err != nil {
				t.Fatalf("seed %d: a second run differs from the first:\n%v", seed, err)
			}
		})
	}
}

// scenario/definitions/chaos-<chaosLabSeed>.json is what the generator and
// the converter make of that seed; CHAOS_WRITE_DEFINITION=1 rewrites it
// (with the simulator's outcomes as its expectations).
func TestChaosDefinitionFile(t *testing.T) {
	path := fmt.Sprintf("../scenario/definitions/chaos-%d.json", chaosLabSeed)
	def, fired, err := chaosDefinition(t, fmt.Sprintf("chaos-%d", chaosLabSeed), 2, chaosLabSchedule(chaosLabSeed), intact)
	if err != nil || fired != "" {
		t.Fatalf("%v %s", err, fired)
	}
	if os.Getenv("CHAOS_WRITE_DEFINITION") != "" {
		b, err := json.MarshalIndent(def, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file scenario.Scenario
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Steps) != len(def.Steps) {
		t.Fatalf("%s: %d steps, the converter makes %d", path, len(file.Steps), len(def.Steps))
	}
	for i, st := range file.Steps {
		drawn := def.Steps[i]
		st.Expect, drawn.Expect = "", ""
		if st.Op != scenario.OpAwait {
			st.Want, drawn.Want = "", ""
		}
		if st != drawn {
			t.Fatalf("%s step %d: %+v, the converter makes %+v", path, i, file.Steps[i], def.Steps[i])
		}
	}
}

// The two ways a fenced host wrote a volume another host held (issue 19,
// findings 1 and 2), as schedules the checker must pass: a refresh reaching
// the fenced host after another host took its LV, and the lease lost again
// while a recovery re-acquires. Each failed before its fix.
func TestChaosKnownSchedules(t *testing.T) {
	for name, steps := range map[string][]chaosStep{
		"refresh-after-fence": {
			{Op: "create", Host: 1, LV: 1}, {Op: "activate", Host: 0, LV: 1, Mode: volumes.Exclusive},
			{Op: "fail-paths", Host: 0}, {Op: "advance", For: 150 * time.Second},
			{Op: "activate", Host: 1, LV: 1, Mode: volumes.Exclusive}, {Op: "restore", Host: 0},
			{Op: "refresh", Host: 0, LV: 1},
		},
		// Shared, so no lease version stands in the way: only the check
		// for a new fence keeps the refresh from making it live again.
		"lease-lost-again-during-recovery": {
			{Op: "create", Host: 1, LV: 1}, {Op: "activate", Host: 0, LV: 1, Mode: volumes.Shared},
			{Op: "activate", Host: 1, LV: 1, Mode: volumes.Shared}, {Op: "open", Host: 0, LV: 1},
			{Op: "fail-paths", Host: 0}, {Op: "advance", For: 90 * time.Second}, {Op: "restore", Host: 0},
			{Op: "fault-inside", Host: 0, At: "lvchange -asy"}, {Op: "poll", Host: 0},
		},
	} {
		if v, at := runSchedule(t, 2, steps, intact); v != "" {
			t.Errorf("%s: %s (after step %d)", name, v, at)
		}
	}
}
