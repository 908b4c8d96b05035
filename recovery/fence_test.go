package recovery

import (
	"context"
	"errors"
	"fmt"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

var (
	disableQueueing = []string{"multipathd", "disablequeueing", "map", "lun0"}
	failIfNoPath    = []string{"dmsetup", "message", "lun0", "0", "fail_if_no_path"}
	table           = []string{"dmsetup", "table"}
	dmInfo          = []string{"dmsetup", "info", "-c", "--noheadings", "--separator", ":", "-o", "open,attr,uuid,name"}
	sanlockStatus   = sanlock.StatusArgv()
)

// The uuids and lease versions of lv1 (exclusive, version 1) and lv2
// (shared) in the recorded dm info and sanlock status.
const (
	lv1UUID = "CfeRBa-m1SY-BiWl-863b-I1cL-WLO9-AzXRlg"
	lv2UUID = "2XbbT6-ItZe-POk3-ACiP-EzeK-qRDY-yCW2Ub"
)

// leaseQueries are the fence's two local queries for lease versions.
func leaseQueries(t *testing.T) []run.Step {
	return []run.Step{
		{Argv: dmInfo, Stdout: fixture.Text(t, "info-lv1-lv2.lab.txt")},
		{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
	}
}

// wipe is one dmsetup wiping devs: the batch of every LV, or one LV's retry.
func wipe(devs ...string) []string {
	return append([]string{"dmsetup", "--noudevsync", "wipe_table"}, devs...)
}

// batchTimedOut is a fence of the recorded lv1 and lv2 whose one wipe of
// both timed out.
func batchTimedOut(t *testing.T) []run.Step {
	return []run.Step{
		{Argv: disableQueueing, Stdout: "ok\n"},
		{Argv: failIfNoPath},
		{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
		{Argv: wipe("vol-lv1", "vol-lv2"), Err: timedOut(wipe("vol-lv1", "vol-lv2"))},
	}
}

// wipedBoth is a fence of the recorded lv1 and lv2 up to the verify.
func wipedBoth(t *testing.T) []run.Step {
	return []run.Step{
		{Argv: disableQueueing, Stdout: "ok\n"},
		{Argv: failIfNoPath},
		{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
		{Argv: wipe("vol-lv1", "vol-lv2")},
		leaseQueries(t)[0], leaseQueries(t)[1],
	}
}

func timedOut(argv []string) error {
	return &run.Error{Argv: argv, ExitCode: -1, TimedOut: true, Err: context.DeadlineExceeded}
}

// deps returns Deps on dir with lv1 held ex and lv2 held sh.
func deps(t *testing.T, r run.Runner) Deps {
	t.Helper()
	dir := t.TempDir()
	held, err := state.OpenHeld(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []state.HeldLV{{VG: "vol", LV: "lv1", UUID: "u1", Mode: state.Exclusive}, {VG: "vol", LV: "lv2", UUID: "u2", Mode: state.Shared}} {
		if err := held.Set(h); err != nil {
			t.Fatal(err)
		}
	}
	return Deps{Runner: r, StateDir: dir, MultipathAlias: "lun0", Log: t.Logf,
		Now: func() time.Time { return time.Date(2026, 11, 23, 12, 1, 20, 0, time.UTC) }}
}

func readJournal(t *testing.T, dir string) *Journal {
	t.Helper()
	j, ok, err := ReadJournal(dir, "vol")
	if err != nil {
		t.Fatalf("journal: ok: err = %v, want nil", err)
	}
	if !ok {
		t.Fatal("journal: ok: ok = false, want true")
	}
	return j
}

// The sequence that worked on real guests (lab run b2), on its recorded
// tables; the journal lists both LVs with their modes before the first wipe.
func TestFenceRecordedSequence(t *testing.T) {
	s := run.NewScripted(t, append(wipedBoth(t),
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt")},
	)...)
	var d Deps
	wipes := 0
	d = deps(t, run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		isWipe := len(c.Argv) > 2 && c.Argv[2] == "wipe_table"
		if isWipe {
			wipes++
			if wipes == 1 {
				j := readJournal(t, d.StateDir)
				if j.Phase != PhaseFencing {
					t.Errorf("journal before the first wipe: j.Phase = %v, want %v", j.Phase, PhaseFencing)
				}
				if !j.QueueingDisabled {
					t.Error("journal before the first wipe: j.QueueingDisabled = false, want true")
				}
				if len(j.LVs) != 2 {
					t.Errorf("journal before the first wipe: len(j.LVs) = %v, want 2", len(j.LVs))
				}
			}
		}
		want := DefaultStepTimeout
		switch {
		case c.Argv[0] == "sanlock" || c.Argv[1] == "info":
			// The local lease-version queries: a full step, as the
			// fence is far ahead of its worst case.
		case isWipe:
			want *= wipeBudgetSteps - 1 // the batch: the budget but one step
		}
		if c.Timeout != want {
			t.Errorf("%s: timeout %v", c, c.Timeout)
		}
		return s.Run(ctx, c)
	}))
	j, err := Fence(context.Background(), d, "vol")
	if err != nil {
		t.Fatal(err)
	}
	want := []FencedLV{
		{LV: "lv1", Device: "vol-lv1", Mode: state.Exclusive, UUID: lv1UUID, Fenced: true, LeaseVersion: 1},
		{LV: "lv2", Device: "vol-lv2", Mode: state.Shared, UUID: lv2UUID, Fenced: true},
	}
	onDisk := readJournal(t, d.StateDir)
	for _, got := range []*Journal{j, onDisk} {
		if got.Phase != PhaseFenced {
			t.Fatalf("journal: got.Phase = %v, want %v", got.Phase, PhaseFenced)
		}
		if !got.QueueingDisabled {
			t.Fatal("journal: got.QueueingDisabled = false, want true")
		}
		if got.FailIfNoPathMap != "lun0" {
			t.Fatalf("journal: got.FailIfNoPathMap = %q, want \"lun0\"", got.FailIfNoPathMap)
		}
		if len(got.Failures) != 0 {
			t.Fatalf("journal: len(got.Failures) = %v, want 0", len(got.Failures))
		}
		if len(got.LVs) != 2 {
			t.Fatalf("LVs: len(got.LVs) = %v, want 2", len(got.LVs))
		}
		if got.LVs[0] != want[0] {
			t.Fatalf("LVs: got.LVs[0] = %v, want %v", got.LVs[0], want[0])
		}
		if got.LVs[1] != want[1] {
			t.Fatalf("LVs: got.LVs[1] = %v, want %v", got.LVs[1], want[1])
		}
	}
	if !onDisk.Started.Equal(d.Now()) {
		t.Fatalf("started %v", onDisk.Started)
	}
}

// multipathd hung: the wipes still run (queueing off or not, they are the fence).
func TestFenceContinuesAfterHungSteps(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: disableQueueing, Err: timedOut(disableQueueing)},
		run.Step{Argv: failIfNoPath, Err: timedOut(failIfNoPath)},
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
		run.Step{Argv: wipe("vol-lv1", "vol-lv2")},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt")},
	)
	d := deps(t, r)
	j, err := Fence(context.Background(), d, "vol")
	if err != nil {
		t.Fatal(err)
	}
	// A timed-out disablequeueing may have applied: recovery restores it.
	if !j.QueueingDisabled {
		t.Fatal("j.QueueingDisabled = false, want true")
	}
	if len(j.Failures) != 2 {
		t.Fatalf("len(j.Failures) = %v, want 2", len(j.Failures))
	}
	if !strings.HasPrefix(j.Failures[0], "multipathd disablequeueing map lun0: ") {
		t.Fatalf("j.Failures[0] = %q, want it to start with \"multipathd disablequeueing map lun0: \"", j.Failures[0])
	}
	if j.QueueingMap != "lun0" {
		t.Fatalf("j.QueueingMap = %q, want \"lun0\"", j.QueueingMap)
	}
}

// lv2's wipe hangs (queued I/O): lv1 is still fenced, the result is failure.
func TestFencePartialFailure(t *testing.T) {
	stillLinear := strings.Replace(fixture.Text(t, "table-after-fence.txt"), "vol-lv2: 0 131072 error ", "vol-lv2: 0 131072 linear 253:0 657408", 1)
	r := run.NewScripted(t, append(batchTimedOut(t),
		run.Step{Argv: table, Stdout: stillLinear},
		run.Step{Argv: wipe("vol-lv2"), Err: timedOut(wipe("vol-lv2"))},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: stillLinear},
	)...)
	d := deps(t, r)
	j, err := Fence(context.Background(), d, "vol")
	if !errors.Is(err, ErrNotFenced) {
		t.Fatalf("err: err = %v, want ErrNotFenced", err)
	}
	if !strings.Contains(err.Error(), "vol-lv2") {
		t.Fatalf("err: err.Error() = %q, want it to contain \"vol-lv2\"", err.Error())
	}
	if !j.LVs[0].Fenced {
		t.Fatal("LVs: j.LVs[0].Fenced = false, want true")
	}
	if j.LVs[1].Fenced {
		t.Fatal("LVs: j.LVs[1].Fenced = true, want false")
	}
	if j.LVs[1].Error == "" {
		t.Fatalf("LVs: j.LVs[1].Error = %v, want != \"\"", j.LVs[1].Error)
	}
	if onDisk := readJournal(t, d.StateDir); onDisk.Phase != PhaseFenceFailed {
		t.Fatalf("phase %s", onDisk.Phase)
	}
}

// Only top-level LVs of the VG are wiped: not lvmlock, not layers
// (snapshot "-real"/"-cow", thin "-tpool"), not other VGs, not the map.
// Not recorded: the lab had no snapshots or thin pools.
func TestFenceSparesLvmlockLayersAndOtherVGs(t *testing.T) {
	before := "lun0: 0 4194304 multipath 0 0 2 1 service-time 0 1 2 8:0 1 1 service-time 0 1 2 8:16 1 1 \n" +
		"other-lv1: 0 131072 linear 253:0 526336\n" +
		"vol-lv1: 0 131072 snapshot-origin 253:3\n" +
		"vol-lv1-real: 0 131072 linear 253:0 526336\n" +
		"vol-lvmlock: 0 524288 linear 253:0 2048\n" +
		"vol-my--snap: 0 131072 snapshot 253:3 253:5 P 8\n" +
		"vol-my--snap-cow: 0 16384 linear 253:0 657408\n" +
		"vol-pool-tpool: 0 262144 thin-pool 253:7 253:8 128 0 0 \n"
	after := strings.NewReplacer(
		"vol-lv1: 0 131072 snapshot-origin 253:3", "vol-lv1: 0 131072 error ",
		"vol-my--snap: 0 131072 snapshot 253:3 253:5 P 8", "vol-my--snap: 0 131072 error ").Replace(before)
	r := run.NewScripted(t,
		run.Step{Argv: disableQueueing, Stdout: "ok\n"},
		run.Step{Argv: failIfNoPath},
		run.Step{Argv: table, Stdout: before},
		run.Step{Argv: wipe("vol-lv1", "vol-my--snap")},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: after},
	)
	j, err := Fence(context.Background(), deps(t, r), "vol")
	if err != nil {
		t.Fatal(err)
	}
	if len(j.LVs) != 2 {
		t.Fatalf("LVs: len(j.LVs) = %v, want 2", len(j.LVs))
	}
	if j.LVs[1].LV != "my-snap" {
		t.Fatalf("LVs: j.LVs[1].LV = %q, want \"my-snap\"", j.LVs[1].LV)
	}
	if j.LVs[1].Mode != "" {
		t.Fatalf("LVs: j.LVs[1].Mode = %q, want \"\"", j.LVs[1].Mode)
	}
}

func TestFenceVerifyFailureIsFailure(t *testing.T) {
	r := run.NewScripted(t, append(wipedBoth(t),
		run.Step{Argv: table, Err: timedOut(table)},
	)...)
	j, err := Fence(context.Background(), deps(t, r), "vol")
	if !errors.Is(err, ErrNotFenced) {
		t.Fatalf("err: err = %v, want ErrNotFenced", err)
	}
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("err: err = %v, want errdefs.ErrCommandTimeout", err)
	}
	if j.Phase != PhaseFenceFailed {
		t.Fatalf("j.Phase = %v, want %v", j.Phase, PhaseFenceFailed)
	}
	if j.LVs[0].Fenced {
		t.Fatal("j.LVs[0].Fenced = true, want false")
	}
	if j.LVs[1].Fenced {
		t.Fatal("j.LVs[1].Fenced = true, want false")
	}
}

// Without the device list nothing can be wiped: fail at once, leave it to the watchdog.
func TestFenceListFailureWipesNothing(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: disableQueueing, Stdout: "ok\n"},
		run.Step{Argv: failIfNoPath},
		run.Step{Argv: table, ExitCode: 1, Stderr: "Command failed.\n"},
	)
	j, err := Fence(context.Background(), deps(t, r), "vol")
	if !errors.Is(err, ErrNotFenced) {
		t.Fatalf("err: err = %v, want ErrNotFenced", err)
	}
	if j.Phase != PhaseFenceFailed {
		t.Fatalf("err: j.Phase = %v, want %v", j.Phase, PhaseFenceFailed)
	}
}

// An LV activated between the list and the verify was never wiped.
func TestFenceLVAppearingDuringFenceIsFailure(t *testing.T) {
	r := run.NewScripted(t, append(wipedBoth(t),
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt") + "vol-lv3: 0 131072 linear 253:0 788480\n"},
	)...)
	j, err := Fence(context.Background(), deps(t, r), "vol")
	if !errors.Is(err, ErrNotFenced) {
		t.Fatalf("err: err = %v, want ErrNotFenced", err)
	}
	if len(j.LVs) != 3 {
		t.Fatalf("err: len(j.LVs) = %v, want 3", len(j.LVs))
	}
	if j.LVs[2].LV != "lv3" {
		t.Fatalf("err: j.LVs[2].LV = %q, want \"lv3\"", j.LVs[2].LV)
	}
	if j.LVs[2].Fenced {
		t.Fatal("err: j.LVs[2].Fenced = true, want false")
	}
}

// No LV active: nothing to take offline is success. No alias configured:
// no fail_if_no_path, and queueing goes off on every map (the LUN's is
// not known).
func TestFenceNothingActive(t *testing.T) {
	only := "lun0: 0 4194304 multipath 0 0 2 1 service-time 0 1 2 8:0 1 1 service-time 0 1 2 8:16 1 1 \nvol-lvmlock: 0 524288 linear 253:0 2048\n"
	r := run.NewScripted(t,
		run.Step{Argv: []string{"multipathd", "disablequeueing", "maps"}, Stdout: "ok\n"},
		run.Step{Argv: table, Stdout: only},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: only},
	)
	d := deps(t, r)
	d.MultipathAlias = ""
	j, err := Fence(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("err: err = %v, want nil", err)
	}
	if len(j.LVs) != 0 {
		t.Fatalf("err: len(j.LVs) = %v, want 0", len(j.LVs))
	}
	if j.Phase != PhaseFenced {
		t.Fatalf("err: j.Phase = %v, want %v", j.Phase, PhaseFenced)
	}
}

// An LV whose device disappeared before the verify (removed) is offline.
func TestFenceRemovedDeviceCountsAsOffline(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: disableQueueing, Stdout: "ok\n"},
		run.Step{Argv: failIfNoPath},
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
		// dmsetup stopped at lv2, gone: the list shows nothing left to wipe.
		run.Step{Argv: wipe("vol-lv1", "vol-lv2"), ExitCode: 1, Stderr: "Device does not exist.\nCommand failed.\n"},
		run.Step{Argv: table, Stdout: strings.Replace(fixture.Text(t, "table-after-fence.txt"), "vol-lv2: 0 131072 error \n", "", 1)},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: strings.Replace(fixture.Text(t, "table-after-fence.txt"), "vol-lv2: 0 131072 error \n", "", 1)},
	)
	j, err := Fence(context.Background(), deps(t, r), "vol")
	if err != nil {
		t.Fatalf("err: err = %v, want nil", err)
	}
	if !j.LVs[1].Fenced {
		t.Fatal("err: j.LVs[1].Fenced = false, want true")
	}
	if j.LVs[1].Error != "" {
		t.Fatalf("err: j.LVs[1].Error = %q, want \"\"", j.LVs[1].Error)
	}
}

func TestReadJournalMissing(t *testing.T) {
	{
		j, ok, err := ReadJournal(t.TempDir(), "vol")
		if j != nil {
			t.Fatalf("j = %v, want nil", j)
		}
		if ok {
			t.Fatal("ok = true, want false")
		}
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
	}
}

// hangingOn runs s, except that a wipe naming one of devs hangs until its
// own timeout or the caller's deadline (a flush stuck on dead storage).
func hangingOn(s run.Runner, devs ...string) run.Runner {
	return run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		if len(c.Argv) > 2 && c.Argv[2] == "wipe_table" && slices.ContainsFunc(devs, func(d string) bool { return slices.Contains(c.Argv, d) }) {
			ctx, cancel := context.WithTimeout(ctx, c.Timeout)
			defer cancel()
			<-ctx.Done()
		}
		return s.Run(ctx, c)
	})
}

// dmsetup stops at a device whose flush hangs; that one is retried last, so
// every other LV is still fenced within the budget.
func TestFenceBatchStoppedAtAHungDevice(t *testing.T) {
	onlyLV2 := strings.Replace(fixture.Text(t, "table-after-fence.txt"), "vol-lv1: 0 131072 error ", "vol-lv1: 0 131072 linear 253:0 526336", 1)
	s := run.NewScripted(t, append(batchTimedOut(t),
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
		run.Step{Argv: wipe("vol-lv2")},
		run.Step{Argv: wipe("vol-lv1"), Err: timedOut(wipe("vol-lv1"))},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: onlyLV2},
	)...)
	d := deps(t, hangingOn(s, "vol-lv1"))
	d.StepTimeout = 500 * time.Millisecond
	j, err := Fence(context.Background(), d, "vol")
	if !errors.Is(err, ErrNotFenced) || !strings.Contains(err.Error(), "[vol-lv1]") {
		t.Fatalf("err = %v, want ErrNotFenced naming vol-lv1 only", err)
	}
	if j.LVs[0].Fenced || !j.LVs[1].Fenced {
		t.Fatalf("fenced: lv1 %v lv2 %v, want false true", j.LVs[0].Fenced, j.LVs[1].Fenced)
	}
}

// Wipes share a budget: once hung wipes have spent it, the remaining LVs
// are reported not attempted (and the fence fails) instead of each waiting
// out its own timeout past sanlock's grace.
func TestFenceWipeBudget(t *testing.T) {
	s := run.NewScripted(t, append(batchTimedOut(t),
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
		run.Step{Argv: wipe("vol-lv2"), Err: timedOut(wipe("vol-lv2"))},
		leaseQueries(t)[0], leaseQueries(t)[1],
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
	)...)
	// lv1 is retried last, after lv2's wipe spent the rest of the budget.
	d := deps(t, hangingOn(s, "vol-lv1", "vol-lv2"))
	d.StepTimeout = 300 * time.Millisecond
	j, err := Fence(context.Background(), d, "vol")
	if !errors.Is(err, ErrNotFenced) {
		t.Fatalf("err: err = %v, want ErrNotFenced", err)
	}
	if j.LVs[0].Error != "not attempted: wipe budget spent" {
		t.Fatalf("err: j.LVs[0].Error = %q, want \"not attempted: wipe budget spent\"", j.LVs[0].Error)
	}
}

// A recovery step holding the fence lock (a refresh hung on the storage)
// delays the fence by one step at most: it then fences without the lock.
func TestFenceGoesOnWithoutAHeldFenceLock(t *testing.T) {
	r := run.NewScripted(t, append(wipedBoth(t),
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt")},
	)...)
	d := deps(t, r)
	d.StepTimeout = 20 * time.Millisecond
	release, err := d.LockFence(context.Background(), "vol", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var lines []string
	d.Log = func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	if _, err := Fence(context.Background(), d, "vol"); err != nil {
		t.Fatalf("fence with the lock held elsewhere: %v", err)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "fencing without it") }) {
		t.Fatalf("no word of the lock in the log:\n%s", strings.Join(lines, "\n"))
	}
	{
		j := readJournal(t, d.StateDir)
		if j.Phase != PhaseFenced {
			t.Fatalf("journal: j.Phase = %v, want %v", j.Phase, PhaseFenced)
		}
		if j.Generation != 1 {
			t.Fatalf("journal: j.Generation = %v, want 1", j.Generation)
		}
	}
}

// A fence of a VG whose recovery has not finished takes the next
// generation and keeps what only the earlier journal knows: lv2, which
// Recover deactivated but had not re-acquired (its mode and lease version),
// and lv3, lost to another host.
func TestFenceFollowsAnUnfinishedRecovery(t *testing.T) {
	onlyLV1 := []run.Step{
		{Argv: disableQueueing, Stdout: "ok\n"},
		{Argv: failIfNoPath},
		{Argv: table, Stdout: tableWithout(t, "vol-lv2")},
		{Argv: dmInfo, Stdout: fixture.Text(t, "info-lv1-lv2.lab.txt")},
		{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		{Argv: table, Stdout: tableWithout(t, "vol-lv2")},
	}
	d := deps(t, run.NewScripted(t, onlyLV1...))
	prev := &Journal{Version: journalVersion, VG: "vol", Generation: 1, Phase: PhaseRecovering,
		Started: time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC), LVs: []FencedLV{
			{LV: "lv1", Device: "vol-lv1", Mode: state.Exclusive, UUID: lv1UUID, Fenced: true, LeaseVersion: 1, InUse: true},
			{LV: "lv2", Device: "vol-lv2", Mode: state.Shared, UUID: lv2UUID, Fenced: true, LeaseVersion: 7},
			{LV: "lv3", Device: "vol-lv3", Mode: state.Exclusive, UUID: "u3", Fenced: true, LeaseVersion: 4, Outcome: OutcomeLost},
		}}
	if err := writeJournal(d.StateDir, prev); err != nil {
		t.Fatal(err)
	}
	j, err := Fence(context.Background(), d, "vol")
	if err != nil {
		t.Fatal(err)
	}
	if j.Generation != 2 {
		t.Fatalf("generation: j.Generation = %v, want 2", j.Generation)
	}
	if j.Started.Equal(prev.Started) {
		t.Fatal("generation: j.Started.Equal(prev.Started) = true, want false")
	}
	want := []FencedLV{
		{LV: "lv1", Device: "vol-lv1", Mode: state.Exclusive, UUID: lv1UUID, Fenced: true, LeaseVersion: 1},
		{LV: "lv2", Device: "vol-lv2", Mode: state.Shared, UUID: lv2UUID, Fenced: true, LeaseVersion: 7},
		{LV: "lv3", Device: "vol-lv3", Mode: state.Exclusive, UUID: "u3", Fenced: true, LeaseVersion: 4, Outcome: OutcomeLost},
	}
	if !reflect.DeepEqual(j.LVs, want) {
		t.Fatalf("LVs\n got %+v\nwant %+v", j.LVs, want)
	}
}

// The state directory cannot be written (here: a file where its parent
// should be): the verdict goes to the runtime directory, where the agent
// finds it. Written nowhere, the fence fails: an agent that never learns
// of a fence would serve on with the VMs paused for good.
func TestFenceJournalWhenTheStateDirCannotBeWritten(t *testing.T) {
	for _, runtimeOK := range []bool{true, false} {
		r := run.NewScripted(t, append(wipedBoth(t),
			run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt")},
		)...)
		d := deps(t, r)
		blocker := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		d.StateDir = filepath.Join(blocker, "state")
		d.RuntimeDir = t.TempDir()
		if !runtimeOK {
			d.RuntimeDir = filepath.Join(blocker, "run")
		}
		_, err := Fence(context.Background(), d, "vol")
		if !runtimeOK {
			if !errors.Is(err, ErrJournalNotWritten) {
				t.Fatalf("journal written nowhere: got %v, want ErrJournalNotWritten", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("journal in the runtime dir only: %v", err)
		}
		j, ok, err := FindJournal(d.StateDir, d.RuntimeDir, "vol")
		if err != nil {
			t.Fatalf("FindJournal: ok: err = %v, want nil", err)
		}
		if !ok {
			t.Fatal("FindJournal: ok: ok = false, want true")
		}
		if j.Phase != PhaseFenced {
			t.Fatalf("FindJournal: ok: j.Phase = %v, want %v", j.Phase, PhaseFenced)
		}
		if len(j.LVs) != 2 {
			t.Fatalf("FindJournal: ok: len(j.LVs) = %v, want 2", len(j.LVs))
		}
	}
}

// A lease-version query gets a full step while the fence is ahead of its
// worst case, and never less than the half step the worst case counts.
func TestLeaseQueryTimeout(t *testing.T) {
	f := &fencer{stepTimeout: 4 * time.Second}
	for _, tc := range []struct {
		left, want time.Duration
	}{
		{fenceSteps * 4 * time.Second, 4 * time.Second},
		{4*time.Second + 5*time.Second, 2500 * time.Millisecond},
		{time.Second, 2 * time.Second},
		{-time.Minute, 2 * time.Second},
	} {
		f.worstCaseEnd = time.Now().Add(tc.left)
		if got := f.leaseQueryTimeout(); got < tc.want-50*time.Millisecond || got > tc.want {
			t.Errorf("%v of the worst case left: %v, want %v", tc.left, got, tc.want)
		}
	}
}
