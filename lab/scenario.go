package lab

import (
	"context"
	"fmt"
	"strings"

	"github.com/aos-agent/aos-agent/internal/run"
)

// ScenarioCluster runs the shared scenario definitions (lab/scenarios) on
// real guests: it implements scenario.Cluster over a Cluster.
type ScenarioCluster struct {
	C      *Cluster
	VGName string
}

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

// OpenDevice holds the LV's device open the way qemu does, from a transient
// systemd unit whose standard input is the device.
func (s *ScenarioCluster) OpenDevice(ctx context.Context, host, vg, lv string) error {
	_, err := s.C.Host(s.host(host)).Run(ctx, run.Cmd{Argv: []string{"systemd-run", "--unit", holdUnit(lv), "--collect",
		"-p", "StandardInput=file:/dev/" + vg + "/" + lv, "sleep", "infinity"}})
	return err
}

func (s *ScenarioCluster) CloseDevice(ctx context.Context, host, vg, lv string) error {
	_, err := s.C.Host(s.host(host)).Run(ctx, run.Cmd{Argv: []string{"systemctl", "stop", holdUnit(lv)}})
	return err
}

func holdUnit(lv string) string { return "aos-hold-" + strings.ReplaceAll(lv, "_", "-") }
