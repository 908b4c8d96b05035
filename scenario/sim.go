package scenario

import (
	"context"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sim"
)

// SimCluster runs scenarios on the simulator.
type SimCluster struct {
	C      *sim.Cluster
	Names  []string
	VGName string
}

// NewSimCluster returns a simulated cluster of n hosts (host_id 1..n) with a
// LUN large enough for every scenario. A nil clock runs simulated time 1000×
// faster than real time.
func NewSimCluster(n int, clock sim.Clock) *SimCluster {
	if clock == nil {
		clock = sim.NewScaledClock(time.Now(), 1000)
	}
	specs := make([]sim.HostSpec, n)
	names := make([]string, n)
	for i := range specs {
		names[i] = "host" + string(rune('1'+i))
		specs[i] = sim.HostSpec{Name: names[i], HostID: i + 1}
	}
	return &SimCluster{C: sim.NewCluster(sim.Options{Hosts: specs, VG: "vol", PVSize: 8 << 30, Clock: clock}), Names: names, VGName: "vol"}
}

func (s *SimCluster) Hosts() []string               { return s.Names }
func (s *SimCluster) Runner(host string) run.Runner { return s.C.Host(host) }
func (s *SimCluster) VG() string                    { return s.VGName }
func (s *SimCluster) MultipathAlias() string        { return "lun0" }

func (s *SimCluster) FailPaths(ctx context.Context, host string, all bool) error {
	s.C.FailPaths(host, all)
	return nil
}

func (s *SimCluster) RestorePaths(ctx context.Context, host string, all bool) error {
	s.C.RestorePaths(host)
	return nil
}

func (s *SimCluster) OpenDevice(ctx context.Context, host, vg, lv string) error {
	return s.C.OpenDevice(host, lv)
}

func (s *SimCluster) CloseDevice(ctx context.Context, host, vg, lv string) error {
	s.C.CloseDevice(host, lv)
	return nil
}
