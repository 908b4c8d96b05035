package scenario

import (
	"context"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/virt"
)

// SimCluster runs scenarios on the simulator.
type SimCluster struct {
	C      *sim.Cluster
	Names  []string
	VGName string
	io     time.Duration

	mu        sync.Mutex
	hookState map[string]string // host → state dir its kill hook fences with
}

// DefaultIOTimeout is the lab's sanlock io_timeout (lvmlockd -o 3), so that
// simulated lease timelines read like the lab's.
const DefaultIOTimeout = 3 * time.Second

// killHookArgv is lvmlockctl_kill_command as `aos-agent install` sets it.
var killHookArgv = []string{"/usr/local/sbin/aos-agent", "kill-hook"}

// NewSimCluster returns a simulated cluster of n hosts (host_id 1..n) with a
// LUN large enough for every scenario, the watchdog off on every host
// (sanlock -w 0) and multipath's no_path_retry fail, like the lab's
// two-host cluster. A nil clock runs
// simulated time 1000× faster than real time; io 0 means DefaultIOTimeout.
func NewSimCluster(n int, clock sim.Clock, io time.Duration) *SimCluster {
	if clock == nil {
		clock = sim.NewScaledClock(time.Now(), 1000)
	}
	if io == 0 {
		io = DefaultIOTimeout
	}
	specs := make([]sim.HostSpec, n)
	names := make([]string, n)
	for i := range specs {
		names[i] = "host" + string(rune('1'+i))
		specs[i] = sim.HostSpec{Name: names[i], HostID: i + 1, NoWatchdog: true, NoPathRetryFail: true}
	}
	s := &SimCluster{Names: names, VGName: "vol", io: io, hookState: map[string]string{}}
	s.C = sim.NewCluster(sim.Options{Hosts: specs, VG: "vol", PVSize: 8 << 30, Clock: clock, IOTimeout: io, RunKill: s.runKill})
	return s
}

func (s *SimCluster) Hosts() []string               { return s.Names }
func (s *SimCluster) Runner(host string) run.Runner { return s.C.Host(host) }
func (s *SimCluster) VG() string                    { return s.VGName }
func (s *SimCluster) MultipathAlias() string        { return "lun0" }
func (s *SimCluster) Clock() Clock                  { return s.C.Clock() }
func (s *SimCluster) IOTimeout() time.Duration      { return s.io }

func (s *SimCluster) FailPaths(ctx context.Context, host string, all bool) error {
	s.C.FailPaths(host, all)
	return nil
}

func (s *SimCluster) RestorePaths(ctx context.Context, host string, all bool) error {
	s.C.RestorePaths(host)
	return nil
}

func (s *SimCluster) StartVM(ctx context.Context, host, vg, lv string) error {
	s.C.DefineDomain(host, VMName(lv), lv)
	_, err := s.C.Host(host).Run(ctx, run.Cmd{Argv: []string{"virsh", "-c", virt.DefaultURI, "start", VMName(lv)}})
	return err
}

func (s *SimCluster) SetKillHook(ctx context.Context, host, stateDir string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.hookState, host)
		s.C.SetKillCommand(host, nil)
		return nil
	}
	s.hookState[host] = stateDir
	s.C.SetKillCommand(host, killHookArgv)
	return nil
}

// FetchFenceJournal has nothing to copy: the simulated hook writes into
// the scenario's state directory itself.
func (s *SimCluster) FetchFenceJournal(ctx context.Context, host, stateDir string) error { return nil }

func (s *SimCluster) StallIO(ctx context.Context, host string, d time.Duration) error {
	s.C.StallIO(host, d)
	return nil
}

// runKill is lvmlockctl running the kill hook: the hook's fence, on the
// simulated host's tools, with the agent state of the scenario.
func (s *SimCluster) runKill(host string, argv []string) int {
	s.mu.Lock()
	dir, ok := s.hookState[host]
	s.mu.Unlock()
	if !ok || len(argv) != len(killHookArgv)+1 {
		return 1
	}
	if _, err := recovery.Fence(context.Background(), recovery.Deps{Runner: s.C.Host(host), StateDir: dir,
		MultipathAlias: s.MultipathAlias()}, argv[len(argv)-1]); err != nil {
		return 1
	}
	return 0
}
