// Package scenario runs the same scenario definitions against the simulated
// cluster and against real hosts in the lab. Each step goes through the
// production code path — the volume service over the lvm, sanlock and
// multipath packages and a host's run.Runner — so the simulator and the lab
// differ only in the runner underneath, and their results can be compared
// step by step.
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
	"github.com/aos-agent/aos-agent/virt"
)

// Scenario is one definition file.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Hosts       int    `json:"hosts"` // hosts needed, named h1..hN
	// Setup is how every host is configured before the steps:
	// SetupDebian (the default) or SetupKillHook.
	Setup string `json:"setup,omitempty"`
	// CheckWriters: after every step, every host's dm tables and lvmlockd
	// locks are read and no LV may be writable from two hosts unless both
	// hold it shared, nor from a host without its lock while another host
	// holds it (see writers). Not for SetupDebian, whose lease-loss split
	// brain is what scenario 08 shows.
	CheckWriters bool   `json:"check_writers,omitempty"`
	Steps        []Step `json:"steps"`
}

// Host setups. Both keep sanlock's watchdog off (-w 0, Debian's default).
const (
	// SetupDebian is Debian's defaults: no lvmlockctl_kill_command.
	SetupDebian = "debian-defaults"
	// SetupKillHook installs the agent's kill hook as
	// lvmlockctl_kill_command, as `aos-agent install` does.
	SetupKillHook = "kill-hook"
)

// Step is one operation on one host and what it must return.
type Step struct {
	Host    string `json:"host"`
	Op      string `json:"op"`
	LV      string `json:"lv,omitempty"`
	Mode    string `json:"mode,omitempty"`    // activate: exclusive|shared; crash-after-lvchange: also none
	SizeGiB uint64 `json:"size_gb,omitempty"` // create, extend
	Clear   string `json:"clear,omitempty"`   // delete: none|zero|shred
	// Origin is the LV a snapshot step snapshots (the step's LV names the
	// snapshot).
	Origin  string `json:"origin,omitempty"`
	ClearMB uint64 `json:"clear_mb,omitempty"`
	All     bool   `json:"all,omitempty"` // fail-paths/restore-paths: every path, not one
	// What is the op an await repeats: a query op (lockspace, table, mode,
	// active-paths) until its value is Want, or activate until it succeeds;
	// or the query a hold repeats, which must give Want every time; or the
	// command prefix after which a fault-inside fails the host's paths.
	What string `json:"what,omitempty"`
	// Within bounds an await in lease terms (BoundRenewalFailure,
	// BoundLeaseExpiry), so one definition fits any io_timeout and clock;
	// for a hold it is how long, counted from the hold's start.
	Within string `json:"within,omitempty"`
	// IOTimeouts is how long stall-io suspends the host's I/O, in sanlock
	// io_timeouts.
	IOTimeouts int `json:"io_timeouts,omitempty"`
	// Expect is "ok" (the default) or the remote class name of the error.
	Expect string `json:"expect,omitempty"`
	// Want is the expected value for query ops: "mode" (exclusive, shared,
	// none), "active-paths" (a number), "lockspace" (joined, joining, lost,
	// none), "table" (linear, error, none: the LV's dm table kind on the
	// host, none when not active there), "recover" (e.g. "reacquired=[a]
	// lost=[b]").
	Want string `json:"want,omitempty"`
	Note string `json:"note,omitempty"`
}

// Ops a step may name.
const (
	OpCreate       = "create"
	OpActivate     = "activate"
	OpDeactivate   = "deactivate"
	OpRefresh      = "refresh"
	OpExtend       = "extend"
	OpDelete       = "delete"
	OpMode         = "mode"         // the lock mode this host holds on LV
	OpActivePaths  = "active-paths" // active paths of the shared LUN's map
	OpOpen         = "open"         // start a VM (libvirt domain vm-LV) whose disk is LV
	OpClose        = "close"        // stop that VM
	OpVM           = "vm"           // the state of the VM using LV: running, paused, shut off
	OpFailPaths    = "fail-paths"
	OpRestorePaths = "restore-paths"
	OpLockspace    = "lockspace" // the VG lockspace's state in sanlock on the host
	OpTable        = "table"     // the LV's dm table kind on the host
	OpAwait        = "await"     // repeat What until it gives Want, within a lease bound
	OpStallIO      = "stall-io"  // suspend I/O on the host's map for IOTimeouts, resume by itself
	OpRecover      = "recover"   // recovery.Recover after a fence (the kill hook's journal)
	OpRejoin       = "rejoin"    // lvmlockctl --drop, then vgchange --lock-start: the manual way back
	OpHold         = "hold"      // repeat What for a lease bound; it must give Want every time
	// The steps randomized agent schedules (make chaos) add: snapshots, time
	// passing, and the agent restarting, also between an lvchange and its
	// record in held.json.
	OpSnapshot           = "snapshot"        // create snapshot LV of Origin, SizeGiB of copy-on-write space
	OpDeleteSnapshot     = "delete-snapshot" // delete snapshot LV
	OpWait               = "wait"            // let IOTimeouts io_timeouts pass
	OpRestart            = "restart"         // the agent restarts on the host from the state it kept
	OpCrashAfterLVChange = "crash-after-lvchange"
	// OpFaultInside arms a lease fault inside a later command: right after
	// the host next runs a command starting with What, every path of the
	// host fails, as after fail-paths all (what lets chaos lose the lease
	// inside the fence or a recovery step). Until such a command runs it
	// does nothing.
	OpFaultInside = "fault-inside"
)

// Lease bounds an await may name. Renewal fails 8 × io_timeout after the
// lease storage went away; other hosts may take its locks 60 s (sanlock's
// watchdog fire timeout) after that.
const (
	BoundRenewalFailure = "renewal-failure"
	BoundLeaseExpiry    = "lease-expiry"
)

// LeaseBound is the nominal time from a lease storage fault to the event
// named by within, for io_timeout io.
func LeaseBound(within string, io time.Duration) (time.Duration, bool) {
	switch within {
	case BoundRenewalFailure:
		return 8 * io, true
	case BoundLeaseExpiry:
		return 8*io + 60*time.Second, true
	}
	return 0, false
}

// awaitSlack is how far past the nominal bound an await keeps trying: real
// hosts notice and act some seconds late (slow guests more), and the
// result must still say whether the event came, not when exactly.
func awaitSlack(bound time.Duration) time.Duration { return bound/2 + 30*time.Second }

// Clock is the cluster's time: the simulator's (scaled) clock, or the wall
// clock in the lab. sim.Clock satisfies it.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// Cluster is what a scenario runs on: the simulator or the lab.
type Cluster interface {
	Hosts() []string
	Runner(host string) run.Runner
	VG() string
	MultipathAlias() string
	FailPaths(ctx context.Context, host string, all bool) error
	RestorePaths(ctx context.Context, host string, all bool) error
	// StartVM defines and starts libvirt domain VMName(lv) on host, its
	// only disk /dev/VG/LV (error_policy 'stop': it pauses on EIO).
	StartVM(ctx context.Context, host, vg, lv string) error
	Clock() Clock
	// IOTimeout is sanlock's io_timeout on the hosts (lvmlockd -o).
	IOTimeout() time.Duration
	// SetKillHook installs (on) or removes the agent's kill hook as the
	// host's lvmlockctl_kill_command. The hook fences with the agent state
	// in stateDir: it reads the held-LV record there and writes its
	// recovery journal there, or somewhere FetchFenceJournal copies from.
	SetKillHook(ctx context.Context, host, stateDir string, on bool) error
	// FetchFenceJournal puts the journal the kill hook wrote on host into
	// stateDir, where recovery.Recover reads it.
	FetchFenceJournal(ctx context.Context, host, stateDir string) error
	// StallIO suspends I/O on the host's multipath map for d and resumes
	// it by itself; it returns once the map is suspended.
	StallIO(ctx context.Context, host string, d time.Duration) error
}

// Result is what one step returned.
type Result struct {
	Index    int           `json:"index"`
	Host     string        `json:"host"`
	Op       string        `json:"op"`
	LV       string        `json:"lv,omitempty"`
	Outcome  string        `json:"outcome"`         // "ok" or the error's remote class name
	Value    string        `json:"value,omitempty"` // for query ops
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"-"`
	// SinceFault is cluster time from the last fail-paths or stall-io to
	// the end of this step (zero before any).
	SinceFault time.Duration `json:"-"`
}

// Load reads every *.json definition in dir, sorted by file name.
func Load(dir string) ([]Scenario, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Scenario
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var s Scenario
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (s *Scenario) Validate() error {
	if s.Name == "" || s.Hosts < 1 || len(s.Steps) == 0 {
		return errors.New("name, hosts and steps are required")
	}
	if s.Setup != "" && s.Setup != SetupDebian && s.Setup != SetupKillHook {
		return fmt.Errorf("unknown setup %q", s.Setup)
	}
	if s.CheckWriters && s.Setup != SetupKillHook {
		return fmt.Errorf("check_writers needs setup %s: without the kill hook a lease loss leaves writers behind", SetupKillHook)
	}
	valid := map[string]bool{OpCreate: true, OpActivate: true, OpDeactivate: true, OpRefresh: true, OpExtend: true,
		OpDelete: true, OpMode: true, OpActivePaths: true, OpOpen: true, OpClose: true, OpVM: true, OpFailPaths: true, OpRestorePaths: true,
		OpLockspace: true, OpTable: true, OpAwait: true, OpStallIO: true, OpRecover: true, OpRejoin: true, OpHold: true,
		OpSnapshot: true, OpDeleteSnapshot: true, OpWait: true, OpRestart: true, OpCrashAfterLVChange: true, OpFaultInside: true}
	for i, st := range s.Steps {
		if !valid[st.Op] {
			return fmt.Errorf("step %d: unknown op %q", i, st.Op)
		}
		if err := st.validateTimed(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		if !strings.HasPrefix(st.Host, "h") || hostIndex(st.Host) < 1 || hostIndex(st.Host) > s.Hosts {
			return fmt.Errorf("step %d: host %q is not one of h1..h%d", i, st.Host, s.Hosts)
		}
		if st.Expect != "" && st.Expect != "ok" && !knownClass(st.Expect) {
			return fmt.Errorf("step %d: unknown error class %q", i, st.Expect)
		}
	}
	return nil
}

// awaitable are the ops an await may repeat.
var awaitable = map[string]bool{OpLockspace: true, OpTable: true, OpMode: true, OpActivePaths: true, OpActivate: true}

func (st Step) validateTimed() error {
	switch st.Op {
	case OpAwait:
		if !awaitable[st.What] {
			return fmt.Errorf("await of %q: want one of lockspace, table, mode, active-paths, activate", st.What)
		}
		if _, ok := LeaseBound(st.Within, time.Second); !ok {
			return fmt.Errorf("await within %q: want %s or %s", st.Within, BoundRenewalFailure, BoundLeaseExpiry)
		}
		if st.What != OpActivate && st.Want == "" {
			return fmt.Errorf("await of %s needs want", st.What)
		}
	case OpHold:
		if !awaitable[st.What] || st.What == OpActivate {
			return fmt.Errorf("hold of %q: want one of lockspace, table, mode, active-paths", st.What)
		}
		if _, ok := LeaseBound(st.Within, time.Second); !ok {
			return fmt.Errorf("hold within %q: want %s or %s", st.Within, BoundRenewalFailure, BoundLeaseExpiry)
		}
		if st.Want == "" {
			return fmt.Errorf("hold of %s needs want", st.What)
		}
	case OpStallIO, OpWait:
		if st.IOTimeouts < 1 {
			return fmt.Errorf("%s needs io_timeouts >= 1", st.Op)
		}
	case OpSnapshot:
		if st.Origin == "" || st.SizeGiB == 0 {
			return errors.New("snapshot needs origin and size_gb")
		}
	case OpFaultInside:
		if st.What == "" {
			return errors.New("fault-inside needs what: the command after which the paths fail")
		}
	case OpCrashAfterLVChange:
		if _, ok := crashLVChange[st.Mode]; !ok {
			return fmt.Errorf("crash-after-lvchange of mode %q: want exclusive, shared or none", st.Mode)
		}
	}
	return nil
}

// crashLVChange is the lvchange a crash-after-lvchange step runs, by mode.
var crashLVChange = map[string]string{"exclusive": "-aey", "shared": "-asy", "none": "-an"}

func hostIndex(h string) int {
	var n int
	if _, err := fmt.Sscanf(h, "h%d", &n); err != nil {
		return 0
	}
	return n
}

func knownClass(name string) bool {
	for _, c := range errdefs.All {
		if c.RemoteName() == name {
			return true
		}
	}
	return false
}

// host is one host's agent stack, built as the daemon builds it.
type host struct {
	name string
	// runner is what the agent runs its commands with; faults armed by
	// fault-inside come through it. The writers check and the commands run
	// behind the agent's back use the host's runner underneath.
	runner   *faultRunner
	stateDir string
	timeout  time.Duration
	svc      *volumes.Service
	lvm      *lvm.Client
	mp       *multipath.Client
	alias    string
}

// Runner executes scenarios on a cluster.
type Runner struct {
	Cluster  Cluster
	StateDir string        // per-host held-LV records go below it
	Timeout  time.Duration // per command; 0 means 2 minutes
}

// Run executes s. It returns every step's result and an error listing the
// steps whose outcome differed from the expectation.
func (r *Runner) Run(ctx context.Context, s Scenario) ([]Result, error) {
	names := r.Cluster.Hosts()
	if len(names) < s.Hosts {
		return nil, fmt.Errorf("%s needs %d hosts, the cluster has %d", s.Name, s.Hosts, len(names))
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	hosts := map[string]*host{}
	for i := 0; i < s.Hosts; i++ {
		fr := &faultRunner{Runner: r.Cluster.Runner(names[i]), cluster: r.Cluster, host: names[i]}
		h, err := r.build(fr, filepath.Join(r.StateDir, s.Name, names[i]), timeout)
		if err != nil {
			return nil, err
		}
		hosts[fmt.Sprintf("h%d", i+1)] = h
		if err := r.Cluster.SetKillHook(ctx, h.name, h.stateDir, s.Setup == SetupKillHook); err != nil {
			return nil, fmt.Errorf("%s: setup %s on %s: %w", s.Name, s.Setup, h.name, err)
		}
	}
	// Every host joins the lockspace first, as lockstart does at boot;
	// an already started lockspace is a success.
	for i := 0; i < s.Hosts; i++ {
		h := hosts[fmt.Sprintf("h%d", i+1)]
		if err := h.lvm.LockStart(ctx, r.Cluster.VG()); err != nil {
			return nil, fmt.Errorf("%s: lock start on %s: %w", s.Name, h.name, err)
		}
	}
	var results []Result
	var mismatches []string
	clock := r.Cluster.Clock()
	var fault time.Time
	for i, st := range s.Steps {
		h := hosts[st.Host]
		start := time.Now()
		if st.Op == OpStallIO || (st.Op == OpFailPaths && st.All) {
			fault = clock.Now()
		}
		var value string
		var err error
		switch st.Op {
		case OpAwait:
			value, err = r.await(ctx, h, st, fault)
		case OpHold:
			value, err = r.hold(ctx, h, st)
		default:
			value, err = r.step(ctx, h, st)
		}
		// A fault armed by fault-inside that came during the step: this
		// step's SinceFault and later awaits count from it, as from a
		// fail-paths all.
		var armed []string
		for n := range s.Hosts {
			at, err := hosts[fmt.Sprintf("h%d", n+1)].runner.takeFired()
			if err != nil {
				armed = append(armed, fmt.Sprintf("step %d (%s %s %s): the armed fault: %v", i, st.Host, st.Op, st.LV, err))
			}
			if !at.IsZero() {
				fault = at
			}
		}
		res := Result{Index: i, Host: st.Host, Op: st.Op, LV: st.LV, Outcome: "ok", Value: value, Duration: time.Since(start)}
		if !fault.IsZero() {
			res.SinceFault = clock.Now().Sub(fault)
		}
		if st.Op == OpAwait || st.Op == OpHold {
			res.Op += " " + st.What
		}
		if err != nil {
			res.Outcome, res.Detail = errdefs.ClassOf(err).RemoteName(), err.Error()
		}
		results = append(results, res)
		want := st.Expect
		if want == "" {
			want = "ok"
		}
		if res.Outcome != want || (st.Want != "" && res.Outcome == "ok" && value != st.Want) {
			mismatches = append(mismatches, fmt.Sprintf("step %d (%s %s %s): got %s %q, want %s %q; %s",
				i, st.Host, st.Op, st.LV, res.Outcome, value, want, st.Want, res.Detail))
		}
		mismatches = append(mismatches, armed...)
		if s.CheckWriters {
			if bad := r.checkWriters(ctx, hosts, s.Hosts); bad != "" {
				mismatches = append(mismatches, fmt.Sprintf("step %d (%s %s %s): VIOLATION: %s", i, st.Host, st.Op, st.LV, bad))
			}
		}
	}
	if len(mismatches) > 0 {
		return results, fmt.Errorf("%s:\n  %s", s.Name, strings.Join(mismatches, "\n  "))
	}
	return results, nil
}

func (r *Runner) build(rn *faultRunner, dir string, timeout time.Duration) (*host, error) {
	vg := r.Cluster.VG()
	held, err := state.OpenHeld(dir)
	if err != nil {
		return nil, err
	}
	l := lvm.New(rn, lvm.Options{VolumeGroups: []string{vg}, Timeout: timeout})
	svc, err := volumes.New(l, sanlock.NewLockCtl(rn, timeout), volumes.CommandWiper{Runner: rn}, held,
		volumes.Options{VolumeGroups: []string{vg}})
	if err != nil {
		return nil, err
	}
	return &host{name: rn.host, runner: rn, stateDir: dir, timeout: timeout, svc: svc, lvm: l,
		mp: multipath.New(rn, timeout), alias: r.Cluster.MultipathAlias()}, nil
}

// hold repeats st.What every third of an io_timeout for the lease bound
// st.Within, counted from now, and returns the first value that is not
// st.Want (or the first error), else st.Want: a state that must last, such
// as a lockspace a recovery rejoined, checked past the renewals that would
// fail it.
func (r *Runner) hold(ctx context.Context, h *host, st Step) (string, error) {
	clock, io := r.Cluster.Clock(), r.Cluster.IOTimeout()
	bound, _ := LeaseBound(st.Within, io)
	deadline := clock.Now().Add(bound)
	probe := st
	probe.Op = st.What
	for {
		value, err := r.step(ctx, h, probe)
		if err != nil || value != st.Want || !clock.Now().Before(deadline) {
			return value, err
		}
		if err := sleep(ctx, clock, io/3); err != nil {
			return value, err
		}
	}
}

// await repeats st.What until it gives st.Want (activate: until it
// succeeds), polling every third of an io_timeout of cluster time. It gives
// up awaitSlack past the lease bound counted from the last fault, and then
// returns the last attempt's value and error, which the caller reports as
// a mismatch.
func (r *Runner) await(ctx context.Context, h *host, st Step, fault time.Time) (string, error) {
	clock, io := r.Cluster.Clock(), r.Cluster.IOTimeout()
	bound, _ := LeaseBound(st.Within, io)
	if fault.IsZero() {
		fault = clock.Now()
	}
	deadline := fault.Add(bound + awaitSlack(bound))
	probe := st
	probe.Op = st.What
	for {
		value, err := r.step(ctx, h, probe)
		done := err == nil && (st.What == OpActivate || value == st.Want)
		if done || !clock.Now().Before(deadline) {
			return value, err
		}
		if err := sleep(ctx, clock, io/3); err != nil {
			return value, err
		}
	}
}

// sleep waits d of cluster time.
func sleep(ctx context.Context, c Clock, d time.Duration) error {
	done := make(chan struct{})
	stop := c.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

func (r *Runner) step(ctx context.Context, h *host, st Step) (string, error) {
	switch st.Op {
	case OpFailPaths:
		return "", r.Cluster.FailPaths(ctx, h.name, st.All)
	case OpRestorePaths:
		return "", r.Cluster.RestorePaths(ctx, h.name, st.All)
	case OpActivePaths:
		m, err := h.mp.Map(ctx, h.alias)
		if err != nil {
			return "", err
		}
		return fmt.Sprint(len(m.ActivePaths())), nil
	case OpLockspace:
		return lockspaceState(ctx, h, r.Cluster.VG())
	case OpStallIO:
		return "", r.Cluster.StallIO(ctx, h.name, time.Duration(st.IOTimeouts)*r.Cluster.IOTimeout())
	case OpRecover:
		return r.recover(ctx, h)
	case OpRejoin:
		if err := sanlock.NewLockCtl(h.runner, h.timeout).Drop(ctx, r.Cluster.VG()); err != nil {
			return "", err
		}
		return "", h.lvm.LockStart(ctx, r.Cluster.VG())
	case OpWait:
		return "", sleep(ctx, r.Cluster.Clock(), time.Duration(st.IOTimeouts)*r.Cluster.IOTimeout())
	case OpRestart:
		return r.restart(ctx, h)
	case OpFaultInside:
		h.runner.arm(st.What)
		return "", nil
	}
	ref, err := h.svc.Resolve("", st.LV)
	if err != nil {
		return "", err
	}
	switch st.Op {
	case OpCreate:
		_, err = h.svc.Create(ctx, ref, st.SizeGiB)
	case OpActivate:
		mode := volumes.RequestedMode(st.Mode)
		if mode == "" {
			mode = volumes.Exclusive
		}
		_, err = h.svc.Activate(ctx, ref, mode)
	case OpDeactivate:
		err = h.svc.Deactivate(ctx, ref)
	case OpRefresh:
		_, err = h.svc.Refresh(ctx, ref)
	case OpExtend:
		_, err = h.svc.Extend(ctx, ref, st.SizeGiB)
	case OpDelete:
		clear := st.Clear
		if clear == "" {
			clear = volumes.ClearNone
		}
		_, err = h.svc.Delete(ctx, ref, clear, st.ClearMB<<20)
	case OpSnapshot:
		_, err = h.svc.CreateSnapshot(ctx, ref, st.Origin, st.SizeGiB)
	case OpDeleteSnapshot:
		_, err = h.svc.DeleteSnapshot(ctx, ref)
	case OpCrashAfterLVChange:
		// The agent dies while lvchange runs, or right after: the lock is
		// taken or released and held.json does not know. With the paths
		// gone lvchange hangs on queued I/O; the dying agent does not wait.
		cctx, cancel := context.WithTimeout(ctx, r.Cluster.IOTimeout())
		_, _ = h.runner.Runner.Run(cctx, run.Cmd{Argv: []string{"lvchange", crashLVChange[st.Mode], ref.VG + "/" + ref.LV}})
		cancel()
		return r.restart(ctx, h)
	case OpOpen:
		err = r.Cluster.StartVM(ctx, h.name, ref.VG, ref.LV)
	case OpClose:
		err = virt.New(h.runner, "", h.timeout).Destroy(ctx, VMName(ref.LV))
	case OpVM:
		st, err := virt.New(h.runner, "", h.timeout).State(ctx, VMName(ref.LV))
		return st.State, err
	case OpMode:
		return modeOf(ctx, h, ref)
	case OpTable:
		return tableKind(ctx, h, ref)
	}
	return "", err
}

// restart is the agent process starting again on the host: a new volume
// service over the state directory it kept. As the daemon does once the
// lockspace is joined and no fence journal waits for recovery, it then
// makes held.json agree with lvmlockd; the value lists what differed
// ("held=[kind:lv …]"), or "held=deferred" when the daemon would wait.
func (r *Runner) restart(ctx context.Context, h *host) (string, error) {
	nh, err := r.build(h.runner, h.stateDir, h.timeout)
	if err != nil {
		return "", err
	}
	*h = *nh
	vg := r.Cluster.VG()
	if err := r.Cluster.FetchFenceJournal(ctx, h.name, h.stateDir); err != nil {
		return "", err
	}
	if _, fenced, err := recovery.FindJournal(h.stateDir, "", vg); err != nil || fenced {
		return "held=deferred", err
	}
	if ls, err := lockspaceState(ctx, h, vg); err != nil || ls != "joined" {
		return "held=deferred", err
	}
	diffs, err := h.svc.ReconcileHeld(ctx, vg)
	if err != nil {
		return "", err
	}
	found := []string{}
	for _, d := range diffs {
		found = append(found, d.Kind+":"+d.LV)
	}
	sort.Strings(found)
	return "held=" + fmt.Sprint(found), nil
}

// faultRunner is a host's runner with the fault a fault-inside step armed:
// right after the host runs a command that starts with the armed prefix,
// every path of the host fails (the lease storage with them), as chaos loses
// a lease inside the fence or a recovery step. It outlives the agent's
// restarts, as the host does.
type faultRunner struct {
	run.Runner
	cluster Cluster
	host    string

	mu    sync.Mutex
	armed string
	fired time.Time // cluster time the armed fault came; zero until then
	err   error     // from failing the paths
}

func (f *faultRunner) arm(prefix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = prefix
}

func (f *faultRunner) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	res, err := f.Runner.Run(ctx, c)
	f.mu.Lock()
	hit := f.armed != "" && strings.HasPrefix(strings.Join(c.Argv, " "), f.armed)
	if hit {
		f.armed = ""
	}
	f.mu.Unlock()
	if hit {
		at := f.cluster.Clock().Now()
		// The command's deadline may be spent by now; the fault comes anyway.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		ferr := f.cluster.FailPaths(fctx, f.host, true)
		cancel()
		f.mu.Lock()
		f.fired, f.err = at, ferr
		f.mu.Unlock()
	}
	return res, err
}

// takeFired returns when the armed fault came (zero if it has not) and
// whether failing the paths went wrong, once.
func (f *faultRunner) takeFired() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, err := f.fired, f.err
	f.fired, f.err = time.Time{}, nil
	return at, err
}

// lockspaceState reads the VG lockspace from sanlock on the host: joined,
// joining (being added), lost (renewal failed: dead until dropped) or none.
func lockspaceState(ctx context.Context, h *host, vg string) (string, error) {
	st, err := sanlock.New(h.runner, h.timeout).Status(ctx)
	if err != nil {
		return "", err
	}
	ls := st.Lockspace(sanlock.LockspacePrefix + vg)
	switch {
	case ls == nil:
		return "none", nil
	case ls.Fields.Bool("space_dead") || ls.Fields.Bool("renew_fail"):
		return "lost", nil
	case ls.Pending != "":
		return "joining", nil
	}
	return "joined", nil
}

// tableKind is the target of the LV's device on the host ("error" once
// fenced), or none when the LV is not active there.
func tableKind(ctx context.Context, h *host, ref volumes.Ref) (string, error) {
	tables, err := dm.New(h.runner, h.timeout).Tables(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tables {
		if t.Name != dm.LVMName(ref.VG, ref.LV) {
			continue
		}
		if t.Errored() || len(t.Segments) == 0 {
			return "error", nil
		}
		return t.Segments[0].Target, nil
	}
	return "none", nil
}

// recover runs recovery.Recover on the host with the journal the kill
// hook left, and renders what it re-acquired and what it lost.
func (r *Runner) recover(ctx context.Context, h *host) (string, error) {
	if err := r.Cluster.FetchFenceJournal(ctx, h.name, h.stateDir); err != nil {
		return "", err
	}
	rep, err := recovery.Recover(ctx, recovery.Deps{Runner: h.runner, StateDir: h.stateDir,
		MultipathAlias: h.alias, StepTimeout: h.timeout, LibvirtURI: virt.DefaultURI}, r.Cluster.VG())
	if err != nil {
		return "", err
	}
	names := func(lvs []recovery.FencedLV) string {
		var out []string
		for _, lv := range lvs {
			out = append(out, lv.LV)
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	var vms []string
	for _, d := range rep.Domains {
		vms = append(vms, d.Name+":"+d.Outcome)
	}
	sort.Strings(vms)
	return "reacquired=" + names(rep.Reacquired) + " lost=" + names(rep.Lost) + " vms=" + fmt.Sprint(vms), nil
}

// VMName is the libvirt domain a scenario's "open" starts on an LV.
func VMName(lv string) string { return "vm-" + lv }

// modeOf reads the lock this host holds on ref from lvmlockd (the truth),
// not from the agent's own record.
func modeOf(ctx context.Context, h *host, ref volumes.Ref) (string, error) {
	vols, err := h.svc.List(ctx, ref.VG)
	if err != nil {
		return "", err
	}
	for _, v := range vols {
		if v.LV == ref.LV {
			if v.Mode == "" {
				return "none", nil
			}
			return string(v.Mode), nil
		}
	}
	return "", errdefs.Errorf(errdefs.ErrVolumeNotFound, "volume %s not found", ref)
}

// Outcomes renders results as comparable lines: what the simulator and the
// lab must agree on (not durations or free-text details).
func Outcomes(results []Result) []string {
	out := make([]string, len(results))
	for i, r := range results {
		out[i] = fmt.Sprintf("%d %s %s %s => %s %s", r.Index, r.Host, r.Op, r.LV, r.Outcome, r.Value)
	}
	return out
}
