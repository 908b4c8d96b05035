package lockstart

import (
	"context"
	"errors"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
)

var argvLVs = []string{"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
	"lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_lockargs,origin,lv_active_locally,lv_active_exclusively,lv_active_remotely,lv_device_open,lv_tags", "vol"}

func stopClient(t *testing.T, steps ...run.Step) *lvm.Client {
	return lvm.New(run.NewScripted(t, steps...), lvm.Options{VolumeGroups: []string{"vol"}, Timeout: time.Minute})
}

// Shutdown with two idle LVs active (recorded lvs report): both go in one
// lvchange, then the lockspace stops, so sanlock and lvmlockd can stop.
func TestStopReleasesIdleLVsAndLeavesTheLockspace(t *testing.T) {
	lv := stopClient(t,
		run.Step{Argv: argvLVs, Stdout: fixture.Text(t, "lvs.vol.two-active.json")},
		run.Step{Argv: []string{"lvchange", "-an", "vol/lv1", "vol/lv2"}},
		run.Step{Argv: []string{"vgchange", "--lock-stop", "vol"}},
	)
	var progress []string
	res := Stop(context.Background(), lv, []string{"vol"}, func(s string) { progress = append(progress, s) })
	if len(res) != 1 {
		t.Fatalf("len(res) = %v, want 1", len(res))
	}
	if !res[0].Stopped {
		t.Fatal("res[0].Stopped = false, want true")
	}
	if strings.Join(res[0].Deactivated, ",") != "lv1,lv2" {
		t.Fatalf("strings.Join(res[0].Deactivated, \",\") = %q, want \"lv1,lv2\"", strings.Join(res[0].Deactivated, ","))
	}
	if res[0].Err != nil {
		t.Fatalf("res[0].Err = %v, want nil", res[0].Err)
	}
	if progress[0] != "VG vol: deactivated 2 LVs, lockspace stopped" {
		t.Fatalf("progress %q", progress)
	}
}

// A VM still holds lv1 open: it is never forced, lv2 is released, and the
// lockspace stays (lvm2 would refuse to stop it anyway).
func TestStopLeavesAnOpenLVAndItsLockspace(t *testing.T) {
	open := strings.Replace(fixture.Text(t, "lvs.vol.two-active.json"), `"lv_device_open":""}`, `"lv_device_open":"open"}`, 1)
	lv := stopClient(t,
		run.Step{Argv: argvLVs, Stdout: open},
		run.Step{Argv: []string{"lvchange", "-an", "vol/lv2"}},
	)
	res := Stop(context.Background(), lv, []string{"vol"}, func(string) {})
	if res[0].Stopped {
		t.Fatal("res[0].Stopped = true, want false")
	}
	if strings.Join(res[0].LeftOpen, ",") != "lv1" {
		t.Fatalf("strings.Join(res[0].LeftOpen, \",\") = %q, want \"lv1\"", strings.Join(res[0].LeftOpen, ","))
	}
	if strings.Join(res[0].Deactivated, ",") != "lv2" {
		t.Fatalf("strings.Join(res[0].Deactivated, \",\") = %q, want \"lv2\"", strings.Join(res[0].Deactivated, ","))
	}
}

// Nothing to do when the lockspace was never started (a boot that failed).
func TestStopWithoutLockspace(t *testing.T) {
	lv := stopClient(t, run.Step{Argv: argvLVs, ExitCode: 5,
		Stderr: "  Reading VG vol without a lock.\n  VG vol lock failed: lockspace is inactive\n"})
	res := Stop(context.Background(), lv, []string{"vol"}, func(string) {})
	if !res[0].Stopped {
		t.Fatal("res[0].Stopped = false, want true")
	}
	if res[0].Err != nil {
		t.Fatalf("res[0].Err = %v, want nil", res[0].Err)
	}
}

// An lvchange that fails for another reason is reported and the lockspace
// is left alone.
func TestStopReportsAFailedDeactivation(t *testing.T) {
	lv := stopClient(t,
		run.Step{Argv: argvLVs, Stdout: fixture.Text(t, "lvs.vol.two-active.json")},
		run.Step{Argv: []string{"lvchange", "-an", "vol/lv1", "vol/lv2"}, ExitCode: 5,
			Stderr: "  VG vol lock failed: storage failed for sanlock leases\n"},
	)
	res := Stop(context.Background(), lv, []string{"vol"}, func(string) {})
	if res[0].Stopped {
		t.Fatal("res[0].Stopped = true, want false")
	}
	if res[0].Err == nil {
		t.Fatal("res[0].Err = nil, want non-nil")
	}
	if !errors.Is(res[0].Err, errdefs.ErrLockspaceLost) {
		t.Fatalf("res[0].Err = %v, want errdefs.ErrLockspaceLost", res[0].Err)
	}
}
