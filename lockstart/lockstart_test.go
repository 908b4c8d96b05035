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
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

var (
	argvSanlock  = sanlock.StatusArgv()
	argvLockctl  = sanlock.InfoArgv()
	argvMap      = []string{"multipathd", "show", "maps", "json"}
	argvVGs      = []string{"vgs", "--reportformat", "json", "-o", "vg_name,pv_count,vg_attr", "vol"}
	argvStart    = []string{"vgchange", "--lock-start", "--lock-opt", "nowait", "vol"}
	argvActivate = func(flag, lv string) []string { return []string{"lvchange", flag, "vol/" + lv} }
)

// ready is one prerequisites round where everything is in place.
func ready(t *testing.T) []run.Step {
	return []run.Step{
		{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		{Argv: argvLockctl, Stdout: fixture.Text(t, "lvmlockctl-info.txt")},
		{Argv: argvMap, Stdout: fixture.Text(t, "multipathd-show-maps.json")},
		{Argv: argvVGs, Stdout: fixture.Text(t, "vgs.vol.json"), Stderr: "  Reading VG vol without a lock.\n"},
	}
}

func options(progress *[]string) Options {
	return Options{
		VolumeGroups:   []string{"vol"},
		MultipathAlias: "lun0",
		Timeout:        time.Hour, // never reached: each test ends by its script
		Poll:           time.Nanosecond,
		Held: []state.HeldLV{
			{VG: "vol", LV: "lv1", Mode: state.Exclusive},
			{VG: "vol", LV: "lv2", Mode: state.Shared},
			{VG: "other", LV: "lvx", Mode: state.Exclusive}, // not configured: left alone
		},
		Progress: func(s string) { *progress = append(*progress, s) },
	}
}

func TestLUNAppearsLateThenJoinAndReactivate(t *testing.T) {
	var steps []run.Step
	// Round 1: sanlock and lvmlockd up, but the LUN is not there yet.
	steps = append(steps,
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		run.Step{Argv: argvLockctl, Stdout: fixture.Text(t, "lvmlockctl-info.txt")},
		run.Step{Argv: argvMap, Stdout: fixture.Text(t, "multipathd-show-maps.empty.json")},
		run.Step{Argv: argvVGs, Stderr: "  Volume group \"vol\" not found\n  Cannot process volume group vol\n", ExitCode: 5},
	)
	steps = append(steps, ready(t)...)
	steps = append(steps,
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		run.Step{Argv: argvStart, Stderr: "  VG vol starting sanlock lockspace\n"},
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.add.txt")},
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.joined.txt")},
		run.Step{Argv: argvActivate("-aey", "lv1")},
		run.Step{Argv: argvActivate("-asy", "lv2")},
	)
	r := run.NewScripted(t, steps...)
	var progress []string
	res, err := Run(context.Background(), NewMachine(r, time.Minute), options(&progress))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Activated) != 2 {
		t.Fatalf("result: len(res.Activated) = %v, want 2", len(res.Activated))
	}
	if res.Activated[0].LV != "lv1" {
		t.Errorf("result: res.Activated[0].LV = %q, want \"lv1\"", res.Activated[0].LV)
	}
	if res.Activated[1].LV != "lv2" {
		t.Errorf("result: res.Activated[1].LV = %q, want \"lv2\"", res.Activated[1].LV)
	}
	if len(res.Conflicts) != 0 {
		t.Errorf("result: len(res.Conflicts) = %v, want 0", len(res.Conflicts))
	}
	want := []string{
		"waiting for: multipath map lun0 (",
		"waiting for: lockspace of VG vol starting",
		"waiting for: lockspace of VG vol joining",
		"lockspaces joined: vol",
		"activated vol/lv1 (ex)",
		"activated vol/lv2 (sh)",
	}
	if len(progress) != len(want) {
		t.Fatalf("progress:\n%s", strings.Join(progress, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(progress[i], w) {
			t.Errorf("progress[%d] = %q, want prefix %q", i, progress[i], w)
		}
	}
	if !strings.Contains(progress[0], "VG vol (not visible") {
		t.Errorf("first wait does not name the missing VG: %q", progress[0])
	}
}

// A deadline run: the scripted runner answers until the context expires.
func deadlineRun(t *testing.T, o Options, answer func(argv []string) (run.Result, error)) error {
	t.Helper()
	o.Timeout = 50 * time.Millisecond
	o.Poll = time.Millisecond
	r := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		if ctx.Err() != nil {
			return run.Result{}, &run.Error{Argv: c.Argv, ExitCode: -1, Err: ctx.Err()}
		}
		return answer(c.Argv)
	})
	_, err := Run(context.Background(), NewMachine(r, time.Minute), o)
	if err == nil {
		t.Fatal("Run succeeded")
	}
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Errorf("error class %v: %v", errdefs.ClassOf(err), err)
	}
	return err
}

func answerFiles(t *testing.T, files map[string]string) func([]string) (run.Result, error) {
	return func(argv []string) (run.Result, error) {
		key := strings.Join(argv, " ")
		f, ok := files[key]
		if !ok {
			t.Errorf("unexpected command %s", key)
			return run.Result{}, &run.Error{Argv: argv, ExitCode: 127}
		}
		if strings.HasPrefix(f, "exit:") {
			code, stderr, _ := strings.Cut(strings.TrimPrefix(f, "exit:"), ":")
			return run.Result{Stderr: []byte(stderr)}, &run.Error{Argv: argv, ExitCode: int(code[0] - '0'), Stderr: stderr}
		}
		return run.Result{Stdout: []byte(fixture.Text(t, f))}, nil
	}
}

func TestPVMissingTimesOutNamingIt(t *testing.T) {
	var progress []string
	err := deadlineRun(t, options(&progress), answerFiles(t, map[string]string{
		"sanlock client status -D":  "sanlock-status.none.txt",
		"lvmlockctl --info":         "lvmlockctl-info.txt",
		"multipathd show maps json": "multipathd-show-maps.json",
		strings.Join(argvVGs, " "):  "vgs.vol-partial.json",
	}))
	if !strings.Contains(err.Error(), "VG vol (PVs missing: VG partial, 1 PVs expected)") {
		t.Errorf("error does not name the missing PV: %v", err)
	}
}

func TestLvmlockdDownTimesOutNamingIt(t *testing.T) {
	var progress []string
	err := deadlineRun(t, options(&progress), answerFiles(t, map[string]string{
		"sanlock client status -D":  "sanlock-status.none.txt",
		"lvmlockctl --info":         "exit:1:/run/lvm/lvmlockd.socket: connect failed: No such file or directory\nCannot connect to lvmlockd.\n",
		"multipathd show maps json": "multipathd-show-maps.json",
		strings.Join(argvVGs, " "):  "vgs.vol.json",
	}))
	if !strings.Contains(err.Error(), "lvmlockd not running") {
		t.Error("error should name lvmlockd and only it: strings.Contains(err.Error(), \"lvmlockd not running\") = false, want true")
	}
	if strings.Contains(err.Error(), "VG vol") {
		t.Error("error should name lvmlockd and only it: strings.Contains(err.Error(), \"VG vol\") = true, want false")
	}
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Error(err)
	}
}

func TestLvmlockdCannotConnectWithExitZero(t *testing.T) {
	r := run.NewScripted(t, run.Step{Argv: argvLockctl, Stderr: "/run/lvm/lvmlockd.socket: connect failed: No such file or directory\nCannot connect to lvmlockd.\n"})
	err := NewMachine(r, time.Minute).LvmlockdRunning(context.Background())
	if !errors.Is(err, errdefs.ErrLockManagerDown) {
		t.Errorf("got %v", err)
	}
}

func TestLockStartFailing(t *testing.T) {
	var progress []string
	err := deadlineRun(t, options(&progress), answerFiles(t, map[string]string{
		"sanlock client status -D":   "sanlock-status.none.txt",
		"lvmlockctl --info":          "lvmlockctl-info.txt",
		"multipathd show maps json":  "multipathd-show-maps.json",
		strings.Join(argvVGs, " "):   "vgs.vol.json",
		strings.Join(argvStart, " "): "exit:5:  VG vol start failed: invalid sanlock host_id, set in lvmlocal.conf\n",
	}))
	if !strings.Contains(err.Error(), "lock start of VG vol failed (vgchange: exit status 5") ||
		!strings.Contains(err.Error(), "invalid sanlock host_id") {
		t.Errorf("error does not carry lvm's reason: %v", err)
	}
}

func TestLeaseNeedsRepairStopsAtOnce(t *testing.T) {
	steps := append(ready(t),
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		run.Step{Argv: argvStart, Stderr: "  VG vol start failed: sanlock lease needs repair\n", ExitCode: 5},
	)
	r := run.NewScripted(t, steps...)
	var progress []string
	_, err := Run(context.Background(), NewMachine(r, time.Minute), options(&progress))
	if !errors.Is(err, ErrLeaseNeedsRepair) {
		t.Error("got: errors.Is(err, ErrLeaseNeedsRepair) = false, want true")
	}
	if !strings.Contains(err.Error(), "VG vol:") {
		t.Error("got: strings.Contains(err.Error(), \"VG vol:\") = false, want true")
	}
}

func TestStartInProgressAndAlreadyStarted(t *testing.T) {
	steps := append(ready(t),
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		run.Step{Argv: argvStart, Stderr: "  VG vol lock failed: lock start in progress\n", ExitCode: 5},
		// Already started: lvm2 exits 0 and sanlock shows it joined.
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.joined.txt")},
		run.Step{Argv: argvActivate("-aey", "lv1")},
		run.Step{Argv: argvActivate("-asy", "lv2"), Stderr: "  LV locked by other host: vol/lv2\n", ExitCode: 5},
	)
	r := run.NewScripted(t, steps...)
	var progress []string
	res, err := Run(context.Background(), NewMachine(r, time.Minute), options(&progress))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) != 1 {
		t.Fatalf("conflicts: len(res.Conflicts) = %v, want 1", len(res.Conflicts))
	}
	if res.Conflicts[0].LV != "lv2" {
		t.Errorf("conflicts: res.Conflicts[0].LV = %q, want \"lv2\"", res.Conflicts[0].LV)
	}
	if !strings.Contains(strings.Join(progress, "\n"), "lockspace of VG vol start in progress") {
		t.Errorf("progress:\n%s", strings.Join(progress, "\n"))
	}
}

func TestLockStartReturnsZeroButLockspaceAbsent(t *testing.T) {
	steps := append(ready(t),
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		run.Step{Argv: argvStart},
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.none.txt")},
		run.Step{Argv: argvStart},
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.joined.txt")},
		run.Step{Argv: argvActivate("-aey", "lv1")},
		run.Step{Argv: argvActivate("-asy", "lv2")},
	)
	r := run.NewScripted(t, steps...)
	var progress []string
	if _, err := Run(context.Background(), NewMachine(r, time.Minute), options(&progress)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(progress, "\n"), "absent from sanlock although lock start succeeded") {
		t.Errorf("progress:\n%s", strings.Join(progress, "\n"))
	}
}

func TestActivationFailureFails(t *testing.T) {
	o := Options{VolumeGroups: []string{"vol"}, Timeout: time.Hour, Poll: time.Nanosecond,
		Held: []state.HeldLV{{VG: "vol", LV: "lv1", Mode: state.Exclusive}}}
	r := run.NewScripted(t,
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.joined.txt")},
		run.Step{Argv: argvLockctl, Stdout: fixture.Text(t, "lvmlockctl-info.txt")},
		run.Step{Argv: argvVGs, Stdout: fixture.Text(t, "vgs.vol.json")},
		run.Step{Argv: argvSanlock, Stdout: fixture.Text(t, "sanlock-status.joined.txt")},
		run.Step{Argv: argvActivate("-aey", "lv1"), Stderr: "  Failed to find logical volume \"vol/lv1\"\n", ExitCode: 5},
	)
	_, err := Run(context.Background(), NewMachine(r, time.Minute), o)
	if err == nil {
		t.Fatal("got: err = nil, want non-nil")
	}
	if !strings.Contains(err.Error(), "vol/lv1 (ex)") {
		t.Errorf("got: err.Error() = %q, want it to contain \"vol/lv1 (ex)\"", err.Error())
	}
}

func TestNoVolumeGroup(t *testing.T) {
	_, err := Run(context.Background(), NewMachine(run.NewScripted(t), time.Minute), Options{Timeout: time.Second})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("got %v", err)
	}
}
