package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/scenario"
)

// ScenarioCluster runs the shared scenario definitions (scenario/definitions) on
// real guests: it implements scenario.Cluster over a Cluster.
type ScenarioCluster struct {
	C      *Cluster
	VGName string

	mu        sync.Mutex
	hookState map[string]string // guest → local state dir of its scenario host
	lvmConf   map[string][]byte // guest → lvm.conf before the kill hook went in
}

// Where the kill hook runs in a guest: the agent the package installed
// (Options.Package), and the agent state it fences with.
const (
	guestAgent    = "/usr/sbin/aos-agent"
	guestStateDir = "/var/lib/aos-agent"
	guestConfig   = "/etc/aos-agent/aos-agent.conf"
	guestLVMConf  = "/etc/lvm/lvm.conf"
	heldFile      = "held.json" // the agent's held-LV record in a state dir
)

func (s *ScenarioCluster) Hosts() []string {
	names := make([]string, s.C.Hosts())
	for i := range names {
		names[i] = fmt.Sprintf("guest%d", i+1)
	}
	return names
}

func (s *ScenarioCluster) host(name string) int {
	var n int
	fmt.Sscanf(name, "guest%d", &n)
	return n
}

func (s *ScenarioCluster) Runner(host string) run.Runner { return s.C.Host(s.host(host)) }
func (s *ScenarioCluster) VG() string                    { return s.VGName }
func (s *ScenarioCluster) MultipathAlias() string        { return LUNMap }

// FailPaths returns once the kernel has failed the paths in the map, so the
// next step sees the degraded map, as it would a while after a real fault.
func (s *ScenarioCluster) FailPaths(ctx context.Context, host string, all bool) error {
	g := s.C.Host(s.host(host))
	if all {
		if err := s.pushHeld(ctx, host); err != nil {
			return err
		}
	}
	if err := FailPaths(ctx, g, all); err != nil {
		return err
	}
	want := 1
	if all {
		want = 0
	}
	return WaitMap(ctx, g, want)
}

// RestorePaths returns once multipathd has reinstated both paths.
func (s *ScenarioCluster) RestorePaths(ctx context.Context, host string, all bool) error {
	g := s.C.Host(s.host(host))
	if err := RestorePaths(ctx, g); err != nil {
		return err
	}
	return WaitMap(ctx, g, 2)
}

// StartVM starts a diskless-boot libvirt domain (StartDomain) on the LV.
func (s *ScenarioCluster) StartVM(ctx context.Context, host, vg, lv string) error {
	return StartDomain(ctx, s.C.Host(s.host(host)), scenario.VMName(lv), "/dev/"+vg+"/"+lv)
}

func (s *ScenarioCluster) Clock() scenario.Clock    { return wallClock{} }
func (s *ScenarioCluster) IOTimeout() time.Duration { return s.C.IOTimeout() }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// SetKillHook sets lvm.conf's lvmlockctl_kill_command to the agent's kill
// hook as `aos-agent install` does, with an agent config naming the VG and
// the map; off puts back the lvm.conf it found (Debian's: no command), so
// use one ScenarioCluster for a sequence of scenarios.
// lvmlockctl reads the setting when sanlock's killpath runs it, so no
// daemon restarts.
func (s *ScenarioCluster) SetKillHook(ctx context.Context, host, stateDir string, on bool) error {
	g := s.C.Host(s.host(host))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hookState == nil {
		s.hookState, s.lvmConf = map[string]string{}, map[string][]byte{}
	}
	if !on {
		delete(s.hookState, host)
		orig, ok := s.lvmConf[host]
		if !ok {
			return nil
		}
		delete(s.lvmConf, host)
		return WriteFile(ctx, g, guestLVMConf, string(orig))
	}
	orig, ok := s.lvmConf[host]
	if !ok {
		res, err := g.Run(ctx, run.Cmd{Argv: []string{"cat", guestLVMConf}})
		if err != nil {
			return err
		}
		orig = res.Stdout
	}
	edited, err := hostcfg.SetLVM(orig, hostcfg.Setting{Section: "global", Key: "lvmlockctl_kill_command", Value: hostcfg.Quote(guestAgent + " kill-hook")})
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("[DEFAULT]\nhost = %s\nstate_dir = %s\n[lvm]\nvolume_groups = %s\nmultipath_alias = %s\n", host, guestStateDir, s.VGName, LUNMap)
	if _, err := g.Run(ctx, run.Cmd{Argv: []string{"mkdir", "-p", guestStateDir, filepath.Dir(guestConfig)}}); err != nil {
		return err
	}
	// A journal left by an earlier fence would be taken for this one's.
	if _, err := g.Run(ctx, run.Cmd{Argv: []string{"rm", "-f", recovery.JournalPath(guestStateDir, s.VGName), filepath.Join(guestStateDir, heldFile)}}); err != nil {
		return err
	}
	if err := WriteFile(ctx, g, guestConfig, conf); err != nil {
		return err
	}
	if err := WriteFile(ctx, g, guestLVMConf, string(edited)); err != nil {
		return err
	}
	s.lvmConf[host], s.hookState[host] = orig, stateDir
	return nil
}

// pushHeld copies the scenario host's held-LV record into the guest, where
// the kill hook reads each LV's mode for the recovery journal (on a real
// host the agent keeps it there all along).
func (s *ScenarioCluster) pushHeld(ctx context.Context, host string) error {
	s.mu.Lock()
	dir, ok := s.hookState[host]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, heldFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return WriteFile(ctx, s.C.Host(s.host(host)), filepath.Join(guestStateDir, heldFile), string(b))
}

// FetchFenceJournal moves the kill hook's journal out of the guest into
// stateDir; without one there is nothing to move.
func (s *ScenarioCluster) FetchFenceJournal(ctx context.Context, host, stateDir string) error {
	g := s.C.Host(s.host(host))
	path := recovery.JournalPath(guestStateDir, s.VGName)
	if _, err := g.Run(ctx, run.Cmd{Argv: []string{"test", "-e", path}}); err != nil {
		return nil
	}
	res, err := g.Run(ctx, run.Cmd{Argv: []string{"cat", path}})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(recovery.JournalPath(stateDir, s.VGName), res.Stdout, 0o644); err != nil {
		return err
	}
	_, err = g.Run(ctx, run.Cmd{Argv: []string{"rm", "-f", path}})
	return err
}

// StallIO suspends the LUN map without flushing (queued I/O waits instead
// of failing) and resumes it d later from a timer.
func (s *ScenarioCluster) StallIO(ctx context.Context, host string, d time.Duration) error {
	g := s.C.Host(s.host(host))
	if err := SuspendMap(ctx, g); err != nil {
		return err
	}
	time.AfterFunc(d, func() {
		// Not a step's result: the steps after it then hang and fail.
		if err := ResumeMap(context.Background(), g); err != nil {
			fmt.Fprintf(os.Stderr, "lab: resume %s on %s after the stall: %v\n", LUNMap, host, err)
		}
	})
	return nil
}
