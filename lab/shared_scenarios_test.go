//go:build lab

package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/scenario"
)

// sharedScenarios runs every definition in scenario/definitions on the real guests
// through the agent's volume service, and the same definition on the
// simulator; a step whose outcome differs between the two fails the test,
// to be fixed in the simulator.
func (l *labT) sharedScenarios(t *testing.T, ctx context.Context) {
	defs, err := scenario.Load("../scenario/definitions")
	if err != nil {
		t.Fatal(err)
	}
	// One ScenarioCluster for all: it remembers the lvm.conf a kill-hook
	// setup replaced, to put back for the next debian-defaults scenario.
	sc := &ScenarioCluster{C: l.c, VGName: vg}
	for _, def := range defs {
		l.scenario(t, "shared/"+def.Name, func(t *testing.T) {
			labRunner := &scenario.Runner{Cluster: sc, StateDir: t.TempDir(), Timeout: 3 * time.Minute}
			if os.Getenv("LAB_LEASE_WATCH") != "" {
				wctx, stop := context.WithCancel(ctx)
				defer stop()
				for h := 1; h <= def.Hosts; h++ {
					go watchLeases(wctx, l.c.Host(h), def.Hosts, filepath.Join(l.out, fmt.Sprintf("leases-%s-h%d.txt", def.Name, h)))
				}
			}
			start := time.Now()
			labRes, labErr := labRunner.Run(ctx, def)
			l.tm.add("scenario "+def.Name+" (lab)", time.Since(start))
			simRunner := &scenario.Runner{Cluster: scenario.NewSimCluster(def.Hosts, nil, l.c.IOTimeout()), StateDir: t.TempDir()}
			simRes, simErr := simRunner.Run(ctx, def)
			l.faultTimeline(t, def, labRes, simRes)

			labOut, simOut := scenario.Outcomes(labRes), scenario.Outcomes(simRes)
			_ = os.MkdirAll(l.out, 0o755)
			_ = os.WriteFile(filepath.Join(l.out, "scenario-"+def.Name+".lab.txt"), []byte(strings.Join(labOut, "\n")+"\n"), 0o644)
			if labErr != nil {
				t.Errorf("lab: %v", labErr)
			}
			if simErr != nil {
				t.Errorf("simulator: %v", simErr)
			}
			for i := range max(len(labOut), len(simOut)) {
				var a, b string
				if i < len(labOut) {
					a = labOut[i]
				}
				if i < len(simOut) {
					b = simOut[i]
				}
				if a != b {
					t.Errorf("simulator disagrees with the lab:\n  lab: %s\n  sim: %s", a, b)
				}
			}
			if t.Failed() {
				for _, r := range labRes {
					t.Logf("lab %d %s %s %s => %s %s %s", r.Index, r.Host, r.Op, r.LV, r.Outcome, r.Value, r.Detail)
				}
				fmt.Printf("scenario %s: %d steps, FAILED (lab %.1fs)\n", def.Name, len(labOut), time.Since(start).Seconds())
				return
			}
			fmt.Printf("scenario %s: %d steps agree (lab %.1fs)\n", def.Name, len(labOut), time.Since(start).Seconds())
		})
	}
}

// faultTimeline prints, for a scenario with a fault (lost paths, stalled
// I/O), when each step after it finished on the lab and on the simulator
// (sim time), keeps the lab's awaits in the timing table, and logs h1's
// journal milestones.
func (l *labT) faultTimeline(t *testing.T, def scenario.Scenario, labRes, simRes []scenario.Result) {
	var b strings.Builder
	for i, r := range labRes {
		if r.SinceFault == 0 {
			continue
		}
		sim := "-"
		if i < len(simRes) {
			sim = fmt.Sprintf("%6.1fs %s %s", simRes[i].SinceFault.Seconds(), simRes[i].Outcome, simRes[i].Value)
		}
		fmt.Fprintf(&b, "  %2d %s %-18s %-13s lab %6.1fs %s %s | sim %s\n", r.Index, r.Host, r.Op, r.LV, r.SinceFault.Seconds(), r.Outcome, r.Value, sim)
		if strings.HasPrefix(r.Op, scenario.OpAwait) {
			l.tm.add(fmt.Sprintf("%s: fault -> %s %s %s", def.Name, r.Host, r.Op, r.Value), r.SinceFault)
		}
	}
	if b.Len() == 0 {
		return
	}
	fmt.Printf("scenario %s, time since the fault (io_timeout %v):\n%s", def.Name, l.c.IOTimeout(), b.String())
	journal, _ := l.cmd(1, "journalctl", "-b", "--since", "-10min", "-o", "short-monotonic", "--no-pager", "-t", "lvmlockctl", "-t", "sanlock", "-t", "aos-agent", "-t", "kernel")
	t.Logf("h1 journal milestones:\n%s", milestones(string(journal.Stdout)))
}
