package agent

import (
	"context"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const infoHealthy = `VG vol lock_type=sanlock cUen60-fdrB-lqcn-Hxab-MCXT-bsGJ-YqQQ8x
LS sanlock lvm_vol
LK VG un ver 6
LK LV sh ZiDJX2-0aHC-bfWR-1etd-f7dn-CqZC-AAZWpY
LK LV ex nDZJg3-3mYO-6btO-T43s-MB0H-kHak-Q8U3JM
`

const dumpHealthy = `info=ls ls_name=lvm_vol vg_name=vol vg_uuid=cUen60-fdrB-lqcn-Hxab-MCXT-bsGJ-YqQQ8x vg_sysid=. vg_args=1.0.0:lvmlock lm_type=sanlock host_id=1 create_fail=0 create_done=1 thread_work=0 thread_stop=0 thread_done=0 kill_vg=0 drop_vg=0 sanlock_gl_enabled=1
`

func newTestMonitor(t *testing.T, r run.Runner) (*Monitor, *prometheus.Registry) {
	t.Helper()
	m := &Monitor{
		Sanlock:   sanlock.New(r, time.Second),
		LockCtl:   sanlock.NewLockCtl(r, time.Second),
		Multipath: multipath.New(r, time.Second),
		Alias:     "lun0",
		VGs:       []string{"vol", "other"},
		Interval:  time.Second,
	}
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestMonitorPollHealthy(t *testing.T) {
	// The fixture's renewal is 12 s old at io_timeout 2 (a warning); make it fresh.
	fresh := strings.Replace(fixture.Text(t, "status-D.source.txt"), "monotime=2150", "monotime=2140", 1)
	r := run.NewScripted(t,
		run.Step{Argv: sanlock.StatusArgv(), Stdout: fresh},
		run.Step{Argv: sanlock.InfoArgv(), Stdout: infoHealthy},
		run.Step{Argv: sanlock.DumpArgv(), Stdout: dumpHealthy},
		run.Step{Argv: []string{"multipathd", "show", "map", "lun0", "json"}, Stdout: fixture.Text(t, "show-map-json.lun0.source.json")},
	).AnyOrder() // the collectors run concurrently
	m, reg := newTestMonitor(t, r)
	snap := m.Poll(context.Background())
	if len(snap.Errors) != 0 {
		t.Fatalf("errors: %v", snap.Errors)
	}
	if st := snap.LockspaceState("vol"); st != sanlock.StateJoined {
		t.Fatalf("vol state %s", st)
	}
	if st := snap.LockspaceState("other"); st != sanlock.StateAbsent {
		t.Fatalf("unconfigured-in-sanlock VG state %s", st)
	}
	if m.Last().Time != snap.Time {
		t.Fatal("Last() is not the latest poll")
	}
	want := `
# HELP aos_lockspace_joined 1 when this host has joined the VG's sanlock lockspace.
# TYPE aos_lockspace_joined gauge
aos_lockspace_joined{vg="other"} 0
aos_lockspace_joined{vg="vol"} 1
# HELP aos_lv_locks LV locks this host holds, by mode (from lvmlockd).
# TYPE aos_lv_locks gauge
aos_lv_locks{mode="ex",vg="other"} 0
aos_lv_locks{mode="ex",vg="vol"} 1
aos_lv_locks{mode="sh",vg="other"} 0
aos_lv_locks{mode="sh",vg="vol"} 1
# HELP aos_collector_success 1 when the collector's last poll succeeded.
# TYPE aos_collector_success gauge
aos_collector_success{collector="lvmlockctl"} 1
aos_collector_success{collector="multipath"} 1
aos_collector_success{collector="sanlock"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "aos_lockspace_joined", "aos_lv_locks", "aos_collector_success"); err != nil {
		t.Fatal(err)
	}
	ls, mp := snap.Describe("lun0")
	if len(ls) != 2 {
		t.Fatalf("describe: len(ls) = %v, want 2", len(ls))
	}
	if ls[1].VG != "vol" {
		t.Fatalf("describe: ls[1].VG = %q, want \"vol\"", ls[1].VG)
	}
	if ls[1].State != "joined" {
		t.Fatalf("describe: ls[1].State = %q, want \"joined\"", ls[1].State)
	}
	if ls[1].LocksShared != 1 {
		t.Fatalf("describe: ls[1].LocksShared = %v, want 1", ls[1].LocksShared)
	}
	if ls[1].LocksExclusive != 1 {
		t.Fatalf("describe: ls[1].LocksExclusive = %v, want 1", ls[1].LocksExclusive)
	}
	if ls[1].IOTimeout != 2 {
		t.Fatalf("describe: ls[1].IOTimeout = %v, want 2", ls[1].IOTimeout)
	}
	if mp == nil {
		t.Fatal("multipath: mp = nil, want non-nil")
	}
	if !mp.Present {
		t.Fatal("multipath: mp.Present = false, want true")
	}
	if mp.PathsTotal == 0 {
		t.Fatalf("multipath: mp.PathsTotal = %v, want != 0", mp.PathsTotal)
	}
	if mp.PathsActive != len(snap.Map.ActivePaths()) {
		t.Fatalf("multipath: mp.PathsActive = %v, want %v", mp.PathsActive, len(snap.Map.ActivePaths()))
	}
	{
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatalf("lint: err = %v, want nil", err)
		}
		if len(problems) != 0 {
			t.Fatalf("lint: len(problems) = %v, want 0", len(problems))
		}
	}
}

// A lockspace whose renewal failed looks unchanged in plain status/info; the
// -D keys and kill_vg are what the monitor must read.
func TestMonitorSeesFailedLockspaceAndCollectorErrors(t *testing.T) {
	failed := strings.Replace(fixture.Text(t, "status-D.source.txt"), "space_dead=0", "space_dead=1", 1)
	killed := strings.Replace(dumpHealthy, "kill_vg=0", "kill_vg=1", 1)
	r := run.NewScripted(t,
		run.Step{Argv: sanlock.StatusArgv(), Stdout: failed},
		run.Step{Argv: sanlock.InfoArgv(), Stdout: infoHealthy},
		run.Step{Argv: sanlock.DumpArgv(), Stdout: dumpHealthy},
		run.Step{Argv: []string{"multipathd", "show", "map", "lun0", "json"}, ExitCode: 1, Stderr: "timeout receiving packet"},
		run.Step{Argv: sanlock.StatusArgv(), Stdout: failed},
		run.Step{Argv: sanlock.InfoArgv(), Stdout: infoHealthy},
		run.Step{Argv: sanlock.DumpArgv(), Stdout: killed},
		run.Step{Argv: []string{"multipathd", "show", "map", "lun0", "json"}, ExitCode: 1, Stderr: "timeout receiving packet"},
	).AnyOrder() // the collectors run concurrently
	m, reg := newTestMonitor(t, r)
	snap := m.Poll(context.Background())
	if st := snap.LockspaceState("vol"); st != sanlock.StateFailed {
		t.Fatalf("state %s", st)
	}
	if snap.Errors[collectorMultipath] == nil {
		t.Fatal("multipath failure not reported: snap.Errors[collectorMultipath] = nil, want non-nil")
	}
	if snap.Map != nil {
		t.Fatalf("multipath failure not reported: snap.Map = %v, want nil", snap.Map)
	}
	if snap = m.Poll(context.Background()); snap.LockspaceState("vol") != sanlock.StateKilled {
		t.Fatalf("state %s", snap.LockspaceState("vol"))
	}
	want := `
# HELP aos_lockspace_failed 1 when the VG's lease renewal failed or the VG was killed (space_dead, renew_fail, kill_vg).
# TYPE aos_lockspace_failed gauge
aos_lockspace_failed{vg="other"} 0
aos_lockspace_failed{vg="vol"} 1
# HELP aos_multipath_paths_active Paths of the shared LUN's multipath map that can carry I/O.
# TYPE aos_multipath_paths_active gauge
aos_multipath_paths_active{map="lun0"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "aos_lockspace_failed", "aos_multipath_paths_active"); err != nil {
		t.Fatal(err)
	}
	_, mp := snap.Describe("lun0")
	if mp.Present {
		t.Fatal("absent map described as present: mp.Present = true, want false")
	}
	if len(mp.Paths) != 0 {
		t.Fatalf("absent map described as present: len(mp.Paths) = %v, want 0", len(mp.Paths))
	}
}
