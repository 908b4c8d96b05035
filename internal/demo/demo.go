// Package demo runs the README's first command: agents for three simulated
// hosts sharing one VG, serving real RPC through a real broker, driven by
// the calls cinder's SharedLVM driver makes, with a readable story.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aos-agent/aos-agent/agent"
	"github.com/aos-agent/aos-agent/agent/cluster"
	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lockstart"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure a demo run.
type Options struct {
	TransportURL  string
	MetricsListen string // first host's metrics endpoint; "" for none
	WorkDir       string // agent state and logs
	Out           io.Writer
	Version       string
	Topic         string // default "aos-agent"
	VG            string // default "vol"
	// LVDevices backs the simulated LVs with real block devices: sparse
	// files in this directory on loop devices, linked at /dev/VG/LV while
	// active (root only; sim.Options.DataDir), for programs that write to
	// the device paths the agents return.
	LVDevices string
	PVSize    int64 // bytes of the shared LUN; default 64 GiB
	// Setup plants a host's configuration by name (the cluster view's
	// tests plant mistakes); hosts not named get the defaults.
	Setup map[string]HostSetup
}

// HostSetup is one simulated host's configuration.
type HostSetup struct {
	HostID        int           // sanlock host_id; 0: its position + 1
	InitiatorName string        // its initiatorname.iscsi; "": one of its own
	ClockOffset   time.Duration // its agent's wall clock runs this far off
	IOTimeout     time.Duration // the sanlock io_timeout it reports; 0: the cluster's
	// NoPathRetry is its multipath.conf's no_path_retry; "": 4 (× 5 s
	// polls: 20 s of queueing, well inside the 80 s lease).
	NoPathRetry string
}

// Hosts of the story: two compute hosts and the cinder-volume host.
var hosts = []string{"compute-a", "compute-b", "cinder-1"}

// killHookArgv is lvm.conf's lvmlockctl_kill_command on the simulated hosts.
var killHookArgv = []string{"/usr/local/sbin/aos-agent", "kill-hook"}

type step struct {
	title  string
	host   string
	method string
	args   map[string]any
	expect string // "ok" or a remote class name
	before func() // fault injection before the call
	// after checks what the call's reply cannot show (the VMs' states);
	// it returns what it saw and whether that is the story's.
	after func() (string, bool)
	// view shows `aos-agent cluster` after the step: "owners" (the lock
	// owner map) or "findings".
	view string
}

type outcome struct {
	step
	got     string
	elapsed time.Duration
	reply   string
}

// Cluster is a simulated cluster with one running agent per host.
type Cluster struct {
	Sim   *sim.Cluster
	Hosts []string
	ctx   context.Context
	stop  context.CancelFunc
	opt   Options
	log   *zap.Logger
	out   io.Writer

	mu     sync.Mutex
	agents map[string]*agentRun // running agents by host
}

type agentRun struct {
	cancel context.CancelFunc
	done   chan error
	daemon *agent.Daemon
}

// Registry is the metrics registry of host's running agent, nil when none
// runs (the cluster view's tests scrape every agent through it).
func (c *Cluster) Registry(host string) *prometheus.Registry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.agents[host]; a != nil {
		return a.daemon.Registry()
	}
	return nil
}

// Stop stops every agent, waits for them and releases the simulated
// cluster's devices.
func (c *Cluster) Stop() error {
	c.stop()
	var first error
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, a := range c.agents {
		if err := <-a.done; err != nil && !errors.Is(err, context.Canceled) && first == nil {
			first = err
		}
		delete(c.agents, h)
	}
	if err := c.Sim.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// StopAgent stops one host's agent, as `systemctl stop aos-agent` would:
// the host keeps its LVs and locks, its RPC queue gets no consumer.
func (c *Cluster) StopAgent(host string) error {
	c.mu.Lock()
	a := c.agents[host]
	delete(c.agents, host)
	c.mu.Unlock()
	if a == nil {
		return fmt.Errorf("no agent runs on %q", host)
	}
	a.cancel()
	if err := <-a.done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Fault injects a fault on a simulated host: "crash-lvmlockd",
// "crash-sanlock" (the daemon dies), "paths-down" (every path to the LUN
// fails; the lease is lost 8 × io_timeout later and the kill hook fences the
// host's LVs) or "paths-up" (the paths return; the agent recovers).
func (c *Cluster) Fault(host, fault string) error {
	if c.Sim.Host(host) == nil {
		return fmt.Errorf("no host %q", host)
	}
	switch fault {
	case "crash-lvmlockd", "crash-sanlock":
		c.Sim.CrashDaemon(host, strings.TrimPrefix(fault, "crash-"))
	case "paths-down":
		c.Sim.FailPaths(host, true)
	case "paths-up":
		c.Sim.RestorePaths(host)
	default:
		return fmt.Errorf("unknown fault %q (crash-lvmlockd, crash-sanlock, paths-down, paths-up)", fault)
	}
	return nil
}

// StartCluster simulates hosts sharing one VG (Options.VG) on one LUN, runs
// lockstart on each as the boot unit would, and starts one agent per host
// (the same daemon as `aos-agent run`, its runner being the simulated
// host). It returns once every agent is READY. Progress lines go to out.
func StartCluster(ctx context.Context, o Options, hostNames []string, out io.Writer, log *zap.Logger) (*Cluster, error) {
	clock := sim.NewScaledClock(time.Now(), 20) // 20 simulated seconds per real second
	specs := make([]sim.HostSpec, len(hostNames))
	for i, h := range hostNames {
		specs[i] = sim.HostSpec{Name: h, HostID: i + 1, IOTimeout: o.Setup[h].IOTimeout}
		if id := o.Setup[h].HostID; id != 0 {
			specs[i].HostID = id
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Cluster{Hosts: hostNames, ctx: ctx, stop: cancel, opt: o, log: log, out: out, agents: map[string]*agentRun{}}
	// lvm.conf's lvmlockctl_kill_command is the agent's kill hook on every
	// host, as `aos-agent install` sets it: lvmlockctl runs it with the VG
	// when the lease is lost, and it fences the host's LVs.
	c.Sim = sim.NewCluster(sim.Options{Hosts: specs, VG: o.vg(), PVSize: o.pvSize(), Clock: clock, DataDir: o.LVDevices,
		RunKill: func(host string, argv []string) int {
			logf := func(format string, a ...any) { log.Sugar().Infof("kill hook on "+host+": "+format, a...) }
			if _, err := recovery.Fence(context.Background(), recovery.Deps{Runner: c.Sim.Host(host),
				StateDir: filepath.Join(o.WorkDir, host), MultipathAlias: "lun0", Log: logf}, argv[len(argv)-1]); err != nil {
				logf("%v", err)
				return 1
			}
			return 0
		}})
	for _, h := range hostNames {
		c.Sim.SetKillCommand(h, killHookArgv)
	}
	for _, h := range hostNames {
		fmt.Fprintf(out, "-- %-10s lockstart: waiting for LUN, PVs, sanlock, lvmlockd; joining lockspace lvm_%s ... ", h, o.vg())
		start := time.Now()
		if _, err := lockstart.Run(ctx, lockstart.NewMachine(c.Sim.Host(h), 30*time.Second), lockstart.Options{
			VolumeGroups: []string{o.vg()}, MultipathAlias: "lun0", Timeout: time.Minute, Poll: 50 * time.Millisecond,
		}); err != nil {
			c.Stop()
			return nil, fmt.Errorf("lockstart on %s: %w", h, err)
		}
		fmt.Fprintf(out, "joined in %s (simulated %s)\n", time.Since(start).Round(time.Millisecond), (20 * time.Since(start)).Round(time.Second))
		if err := c.StartAgent(h); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// StartAgent starts the agent of one host (again, after StopAgent) and
// returns once it is READY.
func (c *Cluster) StartAgent(h string) error {
	o := c.opt
	cfg := config.Default()
	cfg.Host, cfg.TransportURL, cfg.Topic = h, o.TransportURL, o.topic()
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{o.vg()}, "lun0"
	cfg.StateDir = filepath.Join(o.WorkDir, h)
	cfg.RuntimeDir = cfg.StateDir // the simulated kill hook fences there too
	cfg.InitiatorNameFile = filepath.Join(cfg.StateDir, "initiatorname.iscsi")
	iqn := o.Setup[h].InitiatorName
	if iqn == "" {
		iqn = "iqn.2026-12.org.aos-agent.sim:" + h
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.InitiatorNameFile, []byte("## written by the simulator\nInitiatorName="+iqn+"\n"), 0o644); err != nil {
		return err
	}
	// lvmlocal.conf as `aos-agent install --host-id` writes it.
	cfg.LVMLocalConf = filepath.Join(cfg.StateDir, "lvmlocal.conf")
	local := fmt.Sprintf("local {\n\thost_id = %d\n}\n", c.Sim.Host(h).HostID())
	if err := os.WriteFile(cfg.LVMLocalConf, []byte(local), 0o644); err != nil {
		return err
	}
	// lvm.conf and multipath.conf as an installed host has them: the kill
	// hook set, multipath queueing shorter than the lease.
	cfg.LVMConf, cfg.MultipathConf = filepath.Join(cfg.StateDir, "lvm.conf"), filepath.Join(cfg.StateDir, "multipath.conf")
	retry := o.Setup[h].NoPathRetry
	if retry == "" {
		retry = "4"
	}
	for path, content := range map[string]string{
		cfg.LVMConf:       "global {\n\tlvmlockctl_kill_command = \"" + strings.Join(killHookArgv, " ") + "\"\n}\n",
		cfg.MultipathConf: "defaults {\n\tpolling_interval 5\n\tno_path_retry " + retry + "\n}\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	var now func() time.Time
	if off := o.Setup[h].ClockOffset; off != 0 {
		now = func() time.Time { return time.Now().Add(off) }
	}
	cfg.Metrics.Listen = ""
	if len(c.Hosts) > 0 && h == c.Hosts[0] {
		cfg.Metrics.Listen = o.MetricsListen
	}
	ready := make(chan struct{})
	d, err := agent.New(cfg, agent.Options{Version: o.Version, Runner: c.Sim.Host(h), Logger: c.log.With(zap.String("host", h)),
		PollInterval: 200 * time.Millisecond, Ready: ready, Now: now})
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.agents[h] != nil {
		c.mu.Unlock()
		return fmt.Errorf("the agent of %q runs already", h)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	a := &agentRun{cancel: cancel, done: make(chan error, 1), daemon: d}
	c.agents[h] = a
	c.mu.Unlock()
	go func() { a.done <- d.Run(ctx) }()
	select {
	case <-ready:
		fmt.Fprintf(c.out, "-- %-10s agent READY (lockspace joined, RPC consumer up)\n", h)
		return nil
	case err := <-a.done:
		a.done <- err // for Stop
		return fmt.Errorf("agent %s stopped: %v", h, err)
	case <-time.After(time.Minute):
		return fmt.Errorf("agent %s not ready after a minute", h)
	}
}

func (o Options) pvSize() int64 {
	if o.PVSize == 0 {
		return 64 << 30
	}
	return o.PVSize
}

func (o Options) vg() string {
	if o.VG == "" {
		return "vol"
	}
	return o.VG
}

func (o Options) topic() string {
	if o.Topic == "" {
		return "aos-agent"
	}
	return o.Topic
}

// Run starts the agents, tells the story and prints a summary; it returns an
// error if any step ended differently than the story says it must.
func Run(ctx context.Context, o Options) error {
	logFile, err := os.Create(filepath.Join(o.WorkDir, "agents.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logFile), zap.InfoLevel))

	out := o.Out
	fmt.Fprintf(out, "== aos-lab demo: 3 simulated hosts share VG \"vol\" on one multipathed LUN\n")
	fmt.Fprintf(out, "   broker %s, agent logs in %s\n\n", rpc.RedactURL(o.TransportURL), logFile.Name())
	c, err := StartCluster(ctx, o, hosts, out, log)
	if err != nil {
		return err
	}
	if o.MetricsListen != "" {
		fmt.Fprintf(out, "   metrics of compute-a: http://%s/metrics\n", o.MetricsListen)
	}
	client, err := rpc.NewClient(rpc.Config{URL: o.TransportURL, Topic: o.topic(), Logger: log})
	if err != nil {
		c.Stop()
		return err
	}
	defer client.Close()

	st := &story{ctx: ctx, o: o, cluster: c.Sim, client: client}
	steps := st.steps()
	fmt.Fprintln(out)
	results, failed := st.play(steps)
	printSummary(out, results)
	for _, h := range hosts {
		if held, err := state.OpenHeld(filepath.Join(o.WorkDir, h)); err == nil {
			fmt.Fprintf(out, "   %s holds %d LV locks at the end\n", h, len(held.List()))
		}
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintf(out, "   agent stop: %v\n", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d steps ended differently than expected", failed, len(steps))
	}
	fmt.Fprintf(out, "\nall %d steps behaved as expected; agents stopped\n", len(steps))
	return nil
}

// story is the operator story played against running agents.
type story struct {
	ctx     context.Context
	o       Options
	cluster *sim.Cluster
	client  *rpc.Client
}

// steps is the story: what cinder and nova ask, in order, and the answer
// each must get.
func (st *story) steps() []step {
	vol := func(name string, extra ...any) map[string]any {
		m := map[string]any{"volume_name": name}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	// VMs on compute-b: libvirt domains of the simulated host, started with
	// virsh like nova does, whose disks are the attached volumes.
	virsh := func(args ...string) {
		_, _ = st.cluster.Host("compute-b").Run(st.ctx, run.Cmd{Argv: append([]string{"virsh", "-c", "qemu:///system"}, args...)})
	}
	vms := func(want string) func() (string, bool) {
		return func() (string, bool) {
			d := st.cluster.State("compute-b").Domains
			return fmt.Sprintf("instance-1 %s, instance-2 %s", d["instance-1"], d["instance-2"]), d["instance-1"] == want && d["instance-2"] == want
		}
	}
	return []step{
		{title: "cinder creates volume-1 (10 GiB), inactive everywhere", host: "cinder-1", method: "create_volume", args: vol("volume-1", "size", 10), expect: "ok"},
		{title: "cinder creates volume-2 (multi-attach)", host: "cinder-1", method: "create_volume", args: vol("volume-2", "size", 5), expect: "ok"},
		{title: "a retried create is harmless", host: "cinder-1", method: "create_volume", args: vol("volume-1", "size", 10), expect: "ok"},
		{title: "nova attaches volume-1 to a VM on compute-a", host: "compute-a", method: "activate_volume", args: vol("volume-1", "mode", "exclusive"), expect: "ok"},
		{title: "a second attach of volume-1 on compute-b is refused", host: "compute-b", method: "activate_volume", args: vol("volume-1", "mode", "exclusive"), expect: "LockConflict"},
		{title: "bad input is refused before anything runs", host: "compute-b", method: "activate_volume", args: vol("../etc", "mode", "exclusive"), expect: "InvalidArgument"},
		{title: "multi-attach: volume-2 shared on compute-a", host: "compute-a", method: "activate_volume", args: vol("volume-2", "mode", "shared"), expect: "ok"},
		{title: "multi-attach: volume-2 shared on compute-b", host: "compute-b", method: "activate_volume", args: vol("volume-2", "mode", "shared"), expect: "ok"},
		{title: "extend volume-2 while attached shared on two hosts (refresh broadcast)", host: "cinder-1", method: "extend_volume", args: vol("volume-2", "new_size", 8), expect: "ok"},
		{title: "live migration a->b: destination takes volume-1 shared (refused: source still exclusive)", host: "compute-b", method: "activate_volume", args: vol("volume-1", "mode", "shared"), expect: "LockConflict"},
		{title: "live migration a->b: source converts volume-1 to shared", host: "compute-a", method: "activate_volume", args: vol("volume-1", "mode", "shared"), expect: "ok"},
		{title: "live migration a->b: destination takes volume-1 shared", host: "compute-b", method: "activate_volume", args: vol("volume-1", "mode", "shared"), expect: "ok"},
		{title: "live migration a->b: source releases volume-1 after qemu moved", host: "compute-a", method: "deactivate_volume", args: vol("volume-1"), expect: "ok"},
		{title: "live migration a->b: destination converts volume-1 to exclusive", host: "compute-b", method: "activate_volume", args: vol("volume-1", "mode", "exclusive"), expect: "ok", view: "owners"},
		{title: "SAN blip on compute-a: one of two paths fails; locks keep working", host: "compute-a", method: "get_status", args: map[string]any{}, expect: "ok",
			before: func() { st.cluster.FailPaths("compute-a", false) }},
		{title: "the path returns", host: "compute-a", method: "get_status", args: map[string]any{}, expect: "ok",
			before: func() { st.cluster.RestorePaths("compute-a") }},
		{title: "nova starts instance-1 (volume-1) and instance-2 (volume-2) on compute-b", host: "compute-b", method: "list_volumes", args: map[string]any{}, expect: "ok",
			before: func() {
				st.cluster.DefineDomain("compute-b", "instance-1", "volume-1")
				st.cluster.DefineDomain("compute-b", "instance-2", "volume-2")
				virsh("start", "instance-1")
				virsh("start", "instance-2")
			}, after: vms("running")},
		{title: "SAN outage on compute-b: every path lost; sanlock's renewal fails, the kill hook fences its LVs, its VMs pause on EIO", host: "compute-b", method: "get_status", args: map[string]any{}, expect: "ok",
			before: func() {
				st.cluster.FailPaths("compute-b", true)
				waitFor(st.ctx, func() bool { return journalExists(st.o, "compute-b") })
			}, after: vms("paused")},
		{title: "while fenced, compute-b refuses changes at once", host: "compute-b", method: "deactivate_volume", args: vol("volume-2"), expect: "RecoveryInProgress", view: "findings"},
		{title: "paths return: compute-b's agent recovers by itself, re-locks volume-1 (ex) and volume-2 (sh) and resumes the VMs", host: "compute-b", method: "get_status", args: map[string]any{}, expect: "ok",
			before: func() {
				st.cluster.RestorePaths("compute-b")
				waitFor(st.ctx, func() bool { return !journalExists(st.o, "compute-b") })
			}, after: vms("running")},
		{title: "the VMs on compute-b are shut down", host: "compute-b", method: "list_volumes", args: map[string]any{}, expect: "ok",
			before: func() {
				virsh("destroy", "instance-1")
				virsh("destroy", "instance-2")
			}, after: vms("shut off")},
		{title: "detach volume-2 from compute-a", host: "compute-a", method: "deactivate_volume", args: vol("volume-2"), expect: "ok"},
		{title: "detach volume-2 from compute-b", host: "compute-b", method: "deactivate_volume", args: vol("volume-2"), expect: "ok"},
		{title: "delete of volume-1 is refused while it is attached to compute-b", host: "cinder-1", method: "delete_volume", args: vol("volume-1", "clear", "zero", "clear_size_mb", 1), expect: "LockConflict"},
		{title: "detach volume-1 from compute-b", host: "compute-b", method: "deactivate_volume", args: vol("volume-1"), expect: "ok"},
		{title: "cinder deletes volume-1, zeroing its first MiB", host: "cinder-1", method: "delete_volume", args: vol("volume-1", "clear", "zero", "clear_size_mb", 1), expect: "ok"},
		{title: "cinder deletes volume-2", host: "cinder-1", method: "delete_volume", args: vol("volume-2"), expect: "ok"},
		{title: "cinder creates volume-3 and snapshots it (idle: no lock kept anywhere)", host: "cinder-1", method: "create_snapshot", args: map[string]any{"snapshot_name": "_snapshot-3", "volume_name": "volume-3", "size": 1}, expect: "ok",
			before: func() {
				_, _ = st.client.Call(st.ctx, "cinder-1", "create_volume", vol("volume-3", "size", 2), 30*time.Second)
			}},
		{title: "nova attaches volume-3 on compute-a: a volume with snapshots can only be held exclusively", host: "compute-a", method: "activate_volume", args: vol("volume-3", "mode", "exclusive"), expect: "ok"},
		{title: "multi-attach of volume-3 on compute-b is refused while it has a snapshot", host: "compute-b", method: "activate_volume", args: vol("volume-3", "mode", "shared"), expect: "IncompatibleLockMode"},
		{title: "cinder's delete of the snapshot is refused: its origin is attached on compute-a", host: "cinder-1", method: "delete_snapshot", args: map[string]any{"snapshot_name": "_snapshot-3"}, expect: "LockConflict"},
		{title: "compute-a clones the snapshot into volume-4 while its VM writes volume-3", host: "compute-a", method: "clone_volume", args: vol("volume-4", "source_name", "_snapshot-3"), expect: "ok"},
		{title: "compute-a deletes the snapshot under volume-3's lock", host: "compute-a", method: "delete_snapshot", args: map[string]any{"snapshot_name": "_snapshot-3"}, expect: "ok"},
		{title: "detach volume-3; cinder deletes volume-3 and volume-4", host: "cinder-1", method: "delete_volume", args: vol("volume-3"), expect: "ok",
			before: func() {
				_, _ = st.client.Call(st.ctx, "compute-a", "deactivate_volume", vol("volume-3"), 30*time.Second)
				_, _ = st.client.Call(st.ctx, "cinder-1", "delete_volume", vol("volume-4"), 30*time.Second)
			}},
		{title: "compute-b: lock state and paths as the agent reports them", host: "compute-b", method: "get_status", args: map[string]any{}, expect: "ok"},
	}
}

// play runs the steps in order, printing each as it ends, and counts the
// outcomes (RPC answers and VM states) the story did not expect.
func (st *story) play(steps []step) (results []outcome, failed int) {
	out := st.o.Out
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		r := st.call(s)
		mark := "ok"
		if r.got != s.expect {
			mark, failed = "UNEXPECTED (story says "+s.expect+")", failed+1
		}
		fmt.Fprintf(out, "[%2d] %s\n     %s %s(%s) -> %s  %s  [%s]\n", i+1, s.title, s.host, s.method, argString(s.args), r.got, r.reply, mark)
		if s.after != nil {
			saw, ok := s.after()
			mark = "ok"
			if !ok {
				mark, failed = "UNEXPECTED", failed+1
			}
			fmt.Fprintf(out, "     VMs: %s  [%s]\n", saw, mark)
		}
		if s.view != "" {
			st.showView(s.view)
		}
		results = append(results, r)
	}
	return results, failed
}

// showView prints what `aos-agent cluster` shows at this point of the
// story: one fanout call to every agent.
func (st *story) showView(part string) {
	out := st.o.Out
	rep, err := cluster.Gather(st.ctx, st.client, cluster.Options{Wait: time.Second})
	if err != nil {
		fmt.Fprintf(out, "     aos-agent cluster: %v\n", err)
		return
	}
	fmt.Fprintf(out, "     aos-agent cluster (%d hosts answered, %d messages):\n", len(rep.Answered), rep.Messages)
	switch part {
	case "owners":
		for _, o := range rep.Owners {
			var hs []string
			for _, h := range o.Holders {
				hs = append(hs, h.Host+" "+h.Mode)
			}
			fmt.Fprintf(out, "       %s/%s held by %s\n", o.VG, o.LV, strings.Join(hs, ", "))
		}
	case "findings":
		for _, f := range rep.Findings {
			fmt.Fprintf(out, "       [%s] %s: %s\n", f.Severity, f.Kind, f.Message)
		}
	}
}

// call makes one step's RPC call; got is "ok" or the remote error class.
func (st *story) call(s step) outcome {
	start := time.Now()
	raw, err := st.client.Call(st.ctx, s.host, s.method, s.args, 30*time.Second)
	r := outcome{step: s, got: "ok", elapsed: time.Since(start)}
	var re *rpc.RemoteError
	switch {
	case errors.As(err, &re):
		r.got, r.reply = re.Class, re.Message
	case err != nil:
		r.got, r.reply = "error", err.Error()
	default:
		r.reply = summarize(s.method, raw)
	}
	return r
}

func printSummary(out io.Writer, results []outcome) {
	fmt.Fprintf(out, "\n== summary\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\thost\tmethod\tvolume\tresult\texpected\tms")
	for i, r := range results {
		name, _ := r.args["volume_name"].(string)
		if snap, ok := r.args["snapshot_name"].(string); ok && r.method != "create_snapshot" {
			name = snap
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", i+1, r.host, r.method, name, r.got, r.expect, r.elapsed.Milliseconds())
	}
	tw.Flush()
}

// journalExists tells whether host's agent has a fence journal (the kill hook
// wrote it; recovery removes it).
func journalExists(o Options, host string) bool {
	_, ok, err := recovery.ReadJournal(filepath.Join(o.WorkDir, host), o.vg())
	return ok || err != nil
}

// waitFor polls cond until it holds; the story step that follows shows the
// outcome either way, so a timeout needs no error of its own.
func waitFor(ctx context.Context, cond func() bool) {
	deadline := time.Now().Add(time.Minute)
	for !cond() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func argString(args map[string]any) string {
	var parts []string
	for _, k := range []string{"snapshot_name", "volume_name", "source_name", "mode", "size", "new_size", "clear", "clear_size_mb"} {
		if v, ok := args[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// summarize picks the fields an operator cares about from a reply.
func summarize(method string, raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	if method == "get_status" {
		var parts []string
		if ls, ok := m["lockspaces"].([]any); ok {
			for _, l := range ls {
				if lm, ok := l.(map[string]any); ok {
					parts = append(parts, fmt.Sprintf("lockspace %v %v (ex %v, sh %v)", lm["volume_group"], lm["state"], lm["locks_exclusive"], lm["locks_shared"]))
				}
			}
		}
		if mp, ok := m["multipath"].(map[string]any); ok {
			parts = append(parts, fmt.Sprintf("paths %v/%v active", mp["paths_active"], mp["paths_total"]))
		}
		if rec, ok := m["recovery"].(map[string]any); ok {
			parts = append(parts, fmt.Sprintf("recovery %v", rec["state"]))
		}
		return strings.Join(parts, ", ")
	}
	var parts []string
	for _, k := range []string{"device_path", "mode", "size_bytes", "cow_bytes", "refresh_broadcast", "deleted", "active"} {
		if v, ok := m[k]; ok {
			if f, isNum := v.(float64); isNum {
				v = int64(f) // JSON numbers: print sizes as integers
			}
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}
