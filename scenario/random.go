package scenario

import (
	"fmt"
	"math/rand/v2"
)

// randomLVs are the volumes a random schedule works on.
var randomLVs = []string{"volume-r1", "volume-r2", "volume-r3"}

// Random draws a schedule of about n steps over hosts hosts sharing three
// LVs, reproducibly from seed (issue 15's randomized schedules in the
// shared-scenario format, so one runs on the simulator and on real guests
// alike): the driver's calls (create, activate exclusive or shared,
// deactivate, extend, refresh, delete) from any host, lock and table
// queries, one path lost and back, and lease losses (a host loses every
// path: the kill hook fences it, the other hosts go on calling, the paths
// return and the host recovers). Every host then deactivates every LV and
// h1 deletes them. VMs are left out for now: their domains' outcomes on
// real libvirt are not yet modelled closely enough to compare.
//
// The steps carry no expectations; WithOutcomes takes them from a run,
// the simulator's, and the lab must then agree step by step. The writers
// invariant is checked after every step wherever it runs.
func Random(seed uint64, hosts, n int) Scenario {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	s := Scenario{
		Name:         fmt.Sprintf("random-%d", seed),
		Description:  fmt.Sprintf("Drawn by scenario.Random(%d, %d, %d); expectations from the simulator.", seed, hosts, n),
		Hosts:        hosts,
		Setup:        SetupKillHook,
		CheckWriters: true,
	}
	host := func(i int) string { return fmt.Sprintf("h%d", i+1) }
	lv := func() string { return randomLVs[r.IntN(len(randomLVs))] }
	for _, name := range randomLVs {
		s.Steps = append(s.Steps, Step{Host: host(r.IntN(hosts)), Op: OpCreate, LV: name, SizeGiB: 1})
	}
	call := func(h string) Step {
		switch p := r.IntN(24); {
		case p < 10:
			mode := "exclusive"
			if r.IntN(3) == 0 {
				mode = "shared"
			}
			return Step{Host: h, Op: OpActivate, LV: lv(), Mode: mode}
		case p < 16:
			return Step{Host: h, Op: OpDeactivate, LV: lv()}
		case p < 18:
			return Step{Host: h, Op: OpExtend, LV: lv(), SizeGiB: uint64(2 + r.IntN(2))}
		case p < 20:
			return Step{Host: h, Op: OpRefresh, LV: lv()}
		case p < 21:
			return Step{Host: h, Op: OpDelete, LV: lv()}
		case p < 22:
			return Step{Host: h, Op: OpCreate, LV: lv(), SizeGiB: 1}
		case p < 23:
			return Step{Host: h, Op: OpMode, LV: lv()}
		}
		return Step{Host: h, Op: OpTable, LV: lv()}
	}
	pathDown := map[string]bool{} // hosts with one path failed
	for len(s.Steps) < n {
		h := host(r.IntN(hosts))
		switch p := r.IntN(20); {
		case p < 16:
			s.Steps = append(s.Steps, call(h))
		case p < 18:
			if pathDown[h] {
				s.Steps = append(s.Steps, Step{Host: h, Op: OpRestorePaths}, Step{Host: h, Op: OpActivePaths})
			} else {
				s.Steps = append(s.Steps, Step{Host: h, Op: OpFailPaths}, Step{Host: h, Op: OpActivePaths})
			}
			pathDown[h] = !pathDown[h]
		default:
			if hosts < 2 {
				continue
			}
			s.Steps = append(s.Steps,
				Step{Host: h, Op: OpFailPaths, All: true},
				Step{Host: h, Op: OpAwait, What: OpLockspace, Want: "none", Within: BoundRenewalFailure})
			for _, name := range randomLVs {
				s.Steps = append(s.Steps, Step{Host: h, Op: OpTable, LV: name})
			}
			// The others go on, well inside the lease expiry: what the
			// fenced host held stays refused to them.
			for range r.IntN(3) {
				other := host((hostIndex(h) + r.IntN(hosts-1)) % hosts)
				s.Steps = append(s.Steps, call(other))
			}
			pathDown[h] = false
			s.Steps = append(s.Steps,
				Step{Host: h, Op: OpRestorePaths, All: true},
				Step{Host: h, Op: OpAwait, What: OpActivePaths, Want: "2", Within: BoundRenewalFailure},
				Step{Host: h, Op: OpRecover},
				Step{Host: h, Op: OpLockspace})
		}
	}
	for i := range hosts {
		if pathDown[host(i)] {
			s.Steps = append(s.Steps, Step{Host: host(i), Op: OpRestorePaths})
		}
		for _, name := range randomLVs {
			s.Steps = append(s.Steps, Step{Host: host(i), Op: OpDeactivate, LV: name})
		}
	}
	for _, name := range randomLVs {
		s.Steps = append(s.Steps, Step{Host: "h1", Op: OpDelete, LV: name})
	}
	return s
}

// WithOutcomes returns s expecting what results recorded: each step's
// outcome, and the value of each query that succeeded.
func WithOutcomes(s Scenario, results []Result) Scenario {
	out := s
	out.Steps = append([]Step(nil), s.Steps...)
	for _, res := range results {
		st := &out.Steps[res.Index]
		st.Expect = ""
		if res.Outcome != "ok" {
			st.Expect = res.Outcome
		}
		if st.Op != OpAwait && res.Outcome == "ok" && res.Value != "" {
			st.Want = res.Value
		}
	}
	return out
}
