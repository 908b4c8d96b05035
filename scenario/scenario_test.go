package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/sim"
)

func TestDefinitionsLoad(t *testing.T) {
	ss, err := Load("definitions")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 6 {
		t.Fatalf("only %d scenarios", len(ss))
	}
}

func TestLoadRejectsBadDefinitions(t *testing.T) {
	for name, body := range map[string]string{
		"unknown-field":   `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"create","lv":"a","sizee":1}]}`,
		"unknown-op":      `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"format"}]}`,
		"bad-host":        `{"name":"x","hosts":1,"steps":[{"host":"h2","op":"create"}]}`,
		"bad-class":       `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"create","expect":"Oops"}]}`,
		"empty":           `{"name":"x","hosts":1,"steps":[]}`,
		"bad-setup":       `{"name":"x","hosts":1,"setup":"watchdog","steps":[{"host":"h1","op":"create"}]}`,
		"await-what":      `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"await","what":"delete","within":"lease-expiry"}]}`,
		"await-within":    `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"await","what":"lockspace","want":"lost","within":"90s"}]}`,
		"await-want":      `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"await","what":"table","within":"lease-expiry"}]}`,
		"stall-length":    `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"stall-io"}]}`,
		"wait-length":     `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"wait"}]}`,
		"snapshot-origin": `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"snapshot","lv":"s","size_gb":1}]}`,
		"crash-mode":      `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"crash-after-lvchange","lv":"a","mode":"ex"}]}`,
		"fault-where":     `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"fault-inside"}]}`,
		"not-json":        `{`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Every scenario passes on the simulator through the real agent code.
func TestScenariosOnSimulator(t *testing.T) {
	ss, err := Load("definitions")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		t.Run(s.Name, func(t *testing.T) {
			c := NewSimCluster(s.Hosts, nil, 0)
			r := &Runner{Cluster: c, StateDir: t.TempDir()}
			results, err := r.Run(context.Background(), s)
			if err != nil {
				t.Fatalf("%v\nresults:\n%s", err, strings.Join(Outcomes(results), "\n"))
			}
			for _, r := range results {
				if r.SinceFault > 0 {
					t.Logf("%d %s %s %s => %s %s (%v after the fault, sim time)", r.Index, r.Host, r.Op, r.LV, r.Outcome, r.Value, r.SinceFault.Round(time.Second))
				}
			}
		})
	}
}

// Random schedules on the simulator: a first run records the outcomes, a
// second run on a fresh cluster must reproduce them exactly, and neither
// may break the writers invariant. SCENARIO_RANDOM_RUNS sets how many
// (default 20).
func TestRandomScenariosOnSimulator(t *testing.T) {
	runs := 20
	if v := os.Getenv("SCENARIO_RANDOM_RUNS"); v != "" {
		if _, err := fmt.Sscan(v, &runs); err != nil {
			t.Fatalf("SCENARIO_RANDOM_RUNS=%q: %v", v, err)
		}
	}
	for seed := uint64(1); seed <= uint64(runs); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel() // mostly waiting on simulated time
			s := Random(seed, 2+int(seed%3), 30)
			expected, err := simulated(t, s)
			if err != nil {
				b, _ := json.MarshalIndent(shrink(t, s), "", "  ")
				t.Fatalf("seed %d: %v\nshrunk to a definition for scenario/definitions/ (runs in the lab as it stands):\n%s", seed, err, b)
			}
			if _, err := runOnSim(t, expected); err != nil {
				t.Fatalf("seed %d: a second run differs from the first:\n%v", seed, err)
			}
		})
	}
}

// simulated runs a random schedule on the simulator and returns it with
// the outcomes it saw as its expectations; err reports writers violations.
func simulated(t *testing.T, s Scenario) (Scenario, error) {
	results, err := runOnSim(t, s)
	if violation(err) {
		return s, fmt.Errorf("%v\nschedule:\n%s", err, strings.Join(Outcomes(results), "\n"))
	}
	return WithOutcomes(s, results), nil
}

// runOnSim runs s on a simulator at 100× real time: slow enough that a
// loaded machine does not make an await give up before the simulated host
// acted (at 1000× a renewal-failure await lasts 66 ms of real time).
func runOnSim(t *testing.T, s Scenario) ([]Result, error) { return runOnSimAt(t, s, 100) }

func runOnSimAt(t *testing.T, s Scenario, scale float64) ([]Result, error) {
	c := NewSimCluster(s.Hosts, sim.NewScaledClock(time.Now(), scale), 0)
	r := &Runner{Cluster: c, StateDir: t.TempDir()}
	return r.Run(context.Background(), s)
}

func violation(err error) bool { return err != nil && strings.Contains(err.Error(), "VIOLATION") }

// shrink drops steps one at a time for as long as the writers check still
// fires (tried at 1000×: an await a loaded machine cuts short only leaves a
// step in), and returns what is left with the simulator's outcomes as its
// expectations: a definition the lab runs as it stands.
func shrink(t *testing.T, s Scenario) Scenario {
	for dropped := true; dropped; {
		dropped = false
		for i := len(s.Steps) - 1; i >= 0 && len(s.Steps) > 1; i-- {
			c := s
			c.Steps = slices.Delete(slices.Clone(s.Steps), i, i+1)
			if _, err := runOnSimAt(t, c, 1000); violation(err) {
				s, dropped = c, true
			}
		}
	}
	results, _ := runOnSim(t, s)
	s.Name += "-shrunk"
	return WithOutcomes(s, results)
}

// The writers check catches the split brain of Debian's defaults (scenario
// 08: h2 takes the LV h1 still has active after losing its paths).
func TestWritersCatchTheUnfencedLeaseLoss(t *testing.T) {
	ss, err := Load("definitions")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Name != "lease-loss-unfenced" {
			continue
		}
		s.CheckWriters = true // validate refuses it with these defaults: run it anyway
		_, err := runOnSim(t, s)
		if err == nil || !strings.Contains(err.Error(), "VIOLATION: volume-") {
			t.Fatalf("no writers violation in lease-loss-unfenced: %v", err)
		}
		t.Logf("caught: %v", err)
		// Shrunk, it still breaks the invariant, in fewer steps.
		small := shrink(t, s)
		if _, err := runOnSim(t, small); !violation(err) || len(small.Steps) >= len(s.Steps) {
			t.Fatalf("shrunk to %d of %d steps, violation %v: %+v", len(small.Steps), len(s.Steps), err, small.Steps)
		}
		t.Logf("shrunk to %d of %d steps: %+v", len(small.Steps), len(s.Steps), small.Steps)
		return
	}
	t.Fatal("scenario lease-loss-unfenced not found")
}

// The writers check fails when it must: an LV writable on two hosts with
// one exclusive lock, or on a host without a lock another host holds.
func TestWritersInvariant(t *testing.T) {
	const u = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg"
	w := map[string]string{u: "volume-a"}
	for name, tc := range map[string]struct {
		views []hostView
		bad   bool
	}{
		"both shared":       {[]hostView{{name: "h1", writable: w, locks: map[string]sanlock.LockMode{u: "sh"}}, {name: "h2", writable: w, locks: map[string]sanlock.LockMode{u: "sh"}}}, false},
		"ex and sh":         {[]hostView{{name: "h1", writable: w, locks: map[string]sanlock.LockMode{u: "ex"}}, {name: "h2", writable: w, locks: map[string]sanlock.LockMode{u: "sh"}}}, true},
		"fenced, taken":     {[]hostView{{name: "h1"}, {name: "h2", writable: w, locks: map[string]sanlock.LockMode{u: "ex"}}}, false},
		"unlocked, taken":   {[]hostView{{name: "h1", writable: w}, {name: "h2", locks: map[string]sanlock.LockMode{u: "ex"}}}, true},
		"unlocked, nobody":  {[]hostView{{name: "h1", writable: w}, {name: "h2"}}, false},
		"ex, other unowned": {[]hostView{{name: "h1", writable: w, locks: map[string]sanlock.LockMode{u: "ex"}}, {name: "h2"}}, false},
	} {
		if got := writers(tc.views); (got != "") != tc.bad {
			t.Errorf("%s: writers = %q, want violation %v", name, got, tc.bad)
		}
	}
}

// The lab's random schedules: Random(seed, 2, labRandomSteps) for the seeds
// of definitions/random-<seed>.json, with the simulator's outcomes as
// expectations. Each must still be what the generator draws;
// SCENARIO_WRITE_RANDOM=seed,... (re)writes those seeds' files.
const labRandomSteps = 24

func TestRandomDefinitions(t *testing.T) {
	if v := os.Getenv("SCENARIO_WRITE_RANDOM"); v != "" {
		for _, f := range strings.Split(v, ",") {
			var seed uint64
			if _, err := fmt.Sscan(f, &seed); err != nil {
				t.Fatalf("SCENARIO_WRITE_RANDOM=%q: %v", v, err)
			}
			s, err := simulated(t, Random(seed, 2, labRandomSteps))
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("definitions", s.Name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ss, err := Load("definitions")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, s := range ss {
		var seed uint64
		if _, err := fmt.Sscanf(s.Name, "random-%d", &seed); err != nil {
			continue
		}
		found++
		drawn := Random(seed, 2, labRandomSteps)
		if len(drawn.Steps) != len(s.Steps) {
			t.Fatalf("%s: %d steps, the generator draws %d", s.Name, len(s.Steps), len(drawn.Steps))
		}
		for i, st := range s.Steps {
			st.Expect = ""
			if drawn.Steps[i].Want == "" {
				st.Want = ""
			}
			if st != drawn.Steps[i] {
				t.Fatalf("%s step %d: %+v, the generator draws %+v", s.Name, i, s.Steps[i], drawn.Steps[i])
			}
		}
	}
	if found == 0 {
		t.Fatal("no definitions/random-*.json")
	}
}
