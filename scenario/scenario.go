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
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// Scenario is one definition file.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Hosts       int    `json:"hosts"` // hosts needed, named h1..hN
	Steps       []Step `json:"steps"`
}

// Step is one operation on one host and what it must return.
type Step struct {
	Host    string `json:"host"`
	Op      string `json:"op"`
	LV      string `json:"lv,omitempty"`
	Mode    string `json:"mode,omitempty"`    // activate: exclusive|shared
	SizeGiB uint64 `json:"size_gb,omitempty"` // create, extend
	Clear   string `json:"clear,omitempty"`   // delete: none|zero|shred
	ClearMB uint64 `json:"clear_mb,omitempty"`
	All     bool   `json:"all,omitempty"` // fail-paths/restore-paths: every path, not one
	// Expect is "ok" (the default) or the remote class name of the error.
	Expect string `json:"expect,omitempty"`
	// Want is the expected value for query ops: "mode" (exclusive, shared,
	// none), "active-paths" (a number).
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
	OpOpen         = "open"         // hold LV's device open (a VM using it)
	OpClose        = "close"
	OpFailPaths    = "fail-paths"
	OpRestorePaths = "restore-paths"
)

// Cluster is what a scenario runs on: the simulator or the lab.
type Cluster interface {
	Hosts() []string
	Runner(host string) run.Runner
	VG() string
	MultipathAlias() string
	FailPaths(ctx context.Context, host string, all bool) error
	RestorePaths(ctx context.Context, host string, all bool) error
	OpenDevice(ctx context.Context, host, vg, lv string) error
	CloseDevice(ctx context.Context, host, vg, lv string) error
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
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (s *Scenario) validate() error {
	if s.Name == "" || s.Hosts < 1 || len(s.Steps) == 0 {
		return errors.New("name, hosts and steps are required")
	}
	valid := map[string]bool{OpCreate: true, OpActivate: true, OpDeactivate: true, OpRefresh: true, OpExtend: true,
		OpDelete: true, OpMode: true, OpActivePaths: true, OpOpen: true, OpClose: true, OpFailPaths: true, OpRestorePaths: true}
	for i, st := range s.Steps {
		if !valid[st.Op] {
			return fmt.Errorf("step %d: unknown op %q", i, st.Op)
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
	name  string
	svc   *volumes.Service
	lvm   *lvm.Client
	mp    *multipath.Client
	alias string
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
		h, err := r.build(names[i], filepath.Join(r.StateDir, s.Name, names[i]), timeout)
		if err != nil {
			return nil, err
		}
		hosts[fmt.Sprintf("h%d", i+1)] = h
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
	for i, st := range s.Steps {
		h := hosts[st.Host]
		start := time.Now()
		value, err := r.step(ctx, h, st)
		res := Result{Index: i, Host: st.Host, Op: st.Op, LV: st.LV, Outcome: "ok", Value: value, Duration: time.Since(start)}
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
	}
	if len(mismatches) > 0 {
		return results, fmt.Errorf("%s:\n  %s", s.Name, strings.Join(mismatches, "\n  "))
	}
	return results, nil
}

func (r *Runner) build(name, dir string, timeout time.Duration) (*host, error) {
	rn := r.Cluster.Runner(name)
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
	return &host{name: name, svc: svc, lvm: l, mp: multipath.New(rn, timeout), alias: r.Cluster.MultipathAlias()}, nil
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
	}
	ref, err := h.svc.Resolve("", st.LV)
	if err != nil {
		return "", err
	}
	switch st.Op {
	case OpCreate:
		_, err = h.svc.Create(ctx, ref, st.SizeGiB)
	case OpActivate:
		mode := volumes.Mode(st.Mode)
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
	case OpOpen:
		err = r.Cluster.OpenDevice(ctx, h.name, ref.VG, ref.LV)
	case OpClose:
		err = r.Cluster.CloseDevice(ctx, h.name, ref.VG, ref.LV)
	case OpMode:
		return modeOf(ctx, h, ref)
	}
	return "", err
}

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
