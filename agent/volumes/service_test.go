package volumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

const lvsArgvPrefix = "lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_lockargs,origin,lv_active_locally,lv_active_exclusively,lv_active_remotely,lv_device_open,lv_tags"

func lvsArgv(target string) []string { return append(strings.Fields(lvsArgvPrefix), target) }

func lvsJSON(rows ...[3]string) string {
	var lvs []string
	for _, r := range rows {
		lvs = append(lvs, fmt.Sprintf(`{"lv_name":"%s", "vg_name":"vol", "lv_uuid":"%s", "lv_size":"%s", "lv_attr":"-wi-------", "lv_lockargs":"1.0.0:70254592", "origin":"", "lv_active_locally":"", "lv_active_exclusively":"", "lv_active_remotely":"", "lv_device_open":""}`, r[0], r[1], r[2]))
	}
	return `{"report": [{"lv": [` + strings.Join(lvs, ",") + `]}]}`
}

func argv(s string) []string { return strings.Fields(s) }

type fixture struct {
	svc       *Service
	run       *run.Scripted
	held      *state.Held
	transient *state.Held
	gate      error
	before    func(argv []string) // called before each command
}

func newFixture(t *testing.T, steps ...run.Step) *fixture {
	t.Helper()
	f := &fixture{run: run.NewScripted(t, steps...)}
	dir := t.TempDir()
	var err error
	if f.held, err = state.OpenHeld(dir); err != nil {
		t.Fatal(err)
	}
	if f.transient, err = state.OpenTransient(dir); err != nil {
		t.Fatal(err)
	}
	// Like run.Local, a command of a cancelled request fails at once.
	r := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		if err := ctx.Err(); err != nil {
			return run.Result{}, &run.Error{Argv: c.Argv, ExitCode: -1, Err: err}
		}
		if f.before != nil {
			f.before(c.Argv)
		}
		return f.run.Run(ctx, c)
	})
	l := lvm.New(r, lvm.Options{VolumeGroups: []string{"vol", "vol2"}})
	f.svc, err = New(l, sanlock.NewLockCtl(r, time.Second), CommandWiper{Runner: r}, f.held, Options{
		VolumeGroups: []string{"vol", "vol2"},
		Gate:         func() error { return f.gate },
		Transient:    f.transient,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) ref(t *testing.T, lv string) Ref {
	t.Helper()
	r, err := f.svc.Resolve("", lv)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantClass(t *testing.T, err error, c *errdefs.Class) {
	t.Helper()
	if !errors.Is(err, c) {
		t.Fatalf("want %s, got %v (class %s)", c.RemoteName(), err, errdefs.ClassOf(err).RemoteName())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(nil, nil, nil, nil, Options{}); err == nil {
		t.Fatal("no VGs accepted")
	}
	if _, err := New(nil, nil, nil, nil, Options{VolumeGroups: []string{"-bad"}}); err == nil {
		t.Fatal("invalid VG name accepted")
	}
}

// Invalid input is refused before any command runs: the scripted runner
// has no steps, so any command would fail the test.
func TestValidationBeforeAnyCommand(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, c := range []struct{ vg, lv string }{{"", "-lead"}, {"", "a/b"}, {"", "snapshot1"}, {"other", "v1"}, {"", ""}, {"", strings.Repeat("x", 200)}} {
		_, err := f.svc.Resolve(c.vg, c.lv)
		wantClass(t, err, errdefs.ErrInvalidArgument)
	}
	r := f.ref(t, "v1")
	_, err := f.svc.Activate(ctx, r, "rw")
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = f.svc.Create(ctx, r, 0)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = f.svc.Delete(ctx, r, "wipe", 0)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = f.svc.List(ctx, "other")
	wantClass(t, err, errdefs.ErrInvalidArgument)
	if err := (CommandWiper{Runner: f.run}).Wipe(ctx, "/dev/vol/v1", "magic", 1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatal(err)
	}
}

func TestGateRefusesMutationsAtOnce(t *testing.T) {
	f := newFixture(t)
	f.gate = errdefs.Errorf(errdefs.ErrRecoveryInProgress, "recovery of vol in progress")
	ctx := context.Background()
	r := f.ref(t, "v1")
	_, err := f.svc.Activate(ctx, r, Exclusive)
	wantClass(t, err, errdefs.ErrRecoveryInProgress)
	wantClass(t, f.svc.Deactivate(ctx, r), errdefs.ErrRecoveryInProgress)
	_, err = f.svc.Create(ctx, r, 1)
	wantClass(t, err, errdefs.ErrRecoveryInProgress)
	_, err = f.svc.Delete(ctx, r, ClearNone, 0)
	wantClass(t, err, errdefs.ErrRecoveryInProgress)
	_, err = f.svc.Extend(ctx, r, 2)
	wantClass(t, err, errdefs.ErrRecoveryInProgress)
}

func TestActivateRecordsModeAndConverts(t *testing.T) {
	f := newFixture(t,
		run.Step{Argv: argv("lvchange -aey vol/v1")},
		run.Step{Argv: argv("lvchange -aey vol/v1")},                                            // idempotent repeat
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})}, // not an origin
		run.Step{Argv: argv("lvchange -asy vol/v1")},                                            // ex -> sh conversion in place
	)
	ctx := context.Background()
	r := f.ref(t, "v1")
	for i := 0; i < 2; i++ {
		a, err := f.svc.Activate(ctx, r, Exclusive)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if a.DevicePath != "/dev/vol/v1" {
			t.Fatalf("a.DevicePath = %q, want \"/dev/vol/v1\"", a.DevicePath)
		}
		if a.Mode != Exclusive {
			t.Fatalf("a.Mode = %v, want %v", a.Mode, Exclusive)
		}
	}
	if _, err := f.svc.Activate(ctx, r, Shared); err != nil {
		t.Fatal(err)
	}
	{
		h, ok := f.held.Get("vol", "v1")
		if !ok {
			t.Fatal("held: ok = false, want true")
		}
		if h.Mode != state.Shared {
			t.Fatalf("held: h.Mode = %v, want %v", h.Mode, state.Shared)
		}
	}
}

func TestActivateConflictIsNotRecorded(t *testing.T) {
	f := newFixture(t, run.Step{Argv: argv("lvchange -aey vol2/v1"), ExitCode: 5, Stderr: "  LV locked by other host: vol2/v1\n"})
	r, _ := f.svc.Resolve("vol2", "v1")
	_, err := f.svc.Activate(context.Background(), r, Exclusive)
	wantClass(t, err, errdefs.ErrLockConflict)
	if _, ok := f.held.Get("vol2", "v1"); ok {
		t.Fatal("a refused activation was recorded")
	}
}

// Activations arriving while one lvchange runs are batched into the next
// one; an LV that lvm names as failed fails only its own caller.
func TestConcurrentActivationsAreBatched(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var calls [][]string
	r := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		mu.Lock()
		calls = append(calls, c.Argv)
		n := len(calls)
		mu.Unlock()
		if n == 1 {
			<-release
		}
		for _, a := range c.Argv {
			if a == "vol/busy" {
				stderr := "  LV locked by other host: vol/busy\n"
				return run.Result{ExitCode: 5, Stderr: []byte(stderr)}, &run.Error{Argv: c.Argv, ExitCode: 5, Stderr: stderr}
			}
		}
		return run.Result{}, nil
	})
	held, _ := state.OpenHeld(t.TempDir())
	svc, err := New(lvm.New(r, lvm.Options{VolumeGroups: []string{"vol"}}), nil, nil, held, Options{VolumeGroups: []string{"vol"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := make(chan error, 6)
	go func() { _, err := svc.Activate(ctx, Ref{"vol", "first"}, Exclusive); errs <- err }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 })
	names := []string{"a", "b", "c", "d", "busy"}
	results := map[string]chan error{}
	for _, n := range names {
		ch := make(chan error, 1)
		results[n] = ch
		go func(n string) { _, err := svc.Activate(ctx, Ref{"vol", n}, Exclusive); ch <- err }(n)
	}
	waitFor(t, func() bool {
		svc.activate.mu.Lock()
		defer svc.activate.mu.Unlock()
		return len(svc.activate.queue[batchKey{"vol", Exclusive}]) == len(names)
	})
	close(release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		err := <-results[n]
		if n == "busy" {
			wantClass(t, err, errdefs.ErrLockConflict)
		} else if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if len(calls) != 2 {
		t.Fatalf("want one batched lvchange for the queued LVs, got: len(calls) = %v, want 2", len(calls))
	}
	if len(calls[1]) != 2+len(names) {
		t.Fatalf("want one batched lvchange for the queued LVs, got: len(calls[1]) = %v, want %v", len(calls[1]), 2+len(names))
	}
	if len(held.List()) != 5 {
		t.Fatalf("held: %+v", held.List())
	}
}

func TestDeactivate(t *testing.T) {
	f := newFixture(t,
		run.Step{Argv: argv("lvchange -aey vol/v1")},
		run.Step{Argv: argv("lvchange -an vol/v1"), ExitCode: 5, Stderr: "  Logical volume vol/v1 in use.\n"},
		run.Step{Argv: argv("lvchange -an vol/v1")},
		run.Step{Argv: argv("lvchange -an vol/v1")}, // again: inactive is a no-op for lvm
	)
	ctx := context.Background()
	r := f.ref(t, "v1")
	if _, err := f.svc.Activate(ctx, r, Exclusive); err != nil {
		t.Fatal(err)
	}
	wantClass(t, f.svc.Deactivate(ctx, r), errdefs.ErrVolumeInUse)
	if _, ok := f.held.Get("vol", "v1"); !ok {
		t.Fatal("an LV still open must stay recorded")
	}
	for i := 0; i < 2; i++ {
		if err := f.svc.Deactivate(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.held.Get("vol", "v1"); ok {
		t.Fatal("deactivated LV still recorded")
	}
}

// lockSteps are the lock queries before a refresh: the VG's lockspace not
// killed, and lvmlockd's lock on U1 (v1) in mode ("" for none).
func lockSteps(mode string) []run.Step {
	info := "VG vol lock_type=sanlock X\nLS sanlock lvm_vol\n"
	if mode != "" {
		info += "LK LV " + mode + " U1\n"
	}
	return []run.Step{
		{Argv: argv("lvmlockctl --info --dump"), Stdout: "info=ls ls_name=lvm_vol vg_name=vol kill_vg=0 drop_vg=0\n"},
		{Argv: argv("lvmlockctl --info"), Stdout: info},
	}
}

func TestRefreshOnlyWhenLockedHere(t *testing.T) {
	lvsV1 := run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})}
	f := newFixture(t, slices.Concat(
		[]run.Step{lvsV1}, lockSteps(""),
		[]run.Step{lvsV1, {Argv: argv("lvchange -asy vol/v1")}},
		[]run.Step{lvsV1}, lockSteps("sh"), []run.Step{{Argv: argv("lvchange --refresh vol/v1")}},
		[]run.Step{lvsV1}, lockSteps(""),
	)...)
	ctx := context.Background()
	r := f.ref(t, "v1")
	{
		ok, err := f.svc.Refresh(ctx, r)
		if ok {
			t.Fatal("inactive LV: refreshed: ok = true, want false")
		}
		if err != nil {
			t.Fatalf("inactive LV: refreshed: err = %v, want nil", err)
		}
	}
	if _, err := f.svc.Activate(ctx, r, Shared); err != nil {
		t.Fatal(err)
	}
	{
		ok, err := f.svc.Refresh(ctx, r)
		if !ok {
			t.Fatal("LV held shared: refreshed: ok = false, want true")
		}
		if err != nil {
			t.Fatalf("LV held shared: refreshed: err = %v, want nil", err)
		}
	}
	// Recorded as active here, but lvmlockd holds no lock on it any more.
	ok, err := f.svc.Refresh(ctx, r)
	if ok {
		t.Fatal("refreshed without the lock")
	}
	wantClass(t, err, errdefs.ErrLockspaceLost)
}

func TestCreateIsIdempotent(t *testing.T) {
	exists := run.Step{Argv: argv("lvcreate -an -Zn -y -n v1 -L 1073741824b vol"), ExitCode: 5, Stderr: `  Logical Volume "v1" already exists in volume group "vol"` + "\n"}
	f := newFixture(t,
		run.Step{Argv: argv("lvcreate -an -Zn -y -n v1 -L 1073741824b vol")},
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})},
		exists,
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})},
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})},
		run.Step{Argv: argv("lvcreate -an -Zn -y -n v1 -L 2147483648b vol"), ExitCode: 5, Stderr: exists.Stderr},
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})},
	)
	ctx := context.Background()
	r := f.ref(t, "v1")
	for i := 0; i < 2; i++ {
		v, err := f.svc.Create(ctx, r, 1)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if v.UUID != "U1" {
			t.Fatalf("v.UUID = %q, want \"U1\"", v.UUID)
		}
		if v.SizeBytes != GiB {
			t.Fatalf("v.SizeBytes = %v, want %v", v.SizeBytes, GiB)
		}
		if v.ActiveHere {
			t.Fatal("v.ActiveHere = true, want false")
		}
	}
	_, err := f.svc.Create(ctx, r, 2)
	wantClass(t, err, errdefs.ErrVolumeExists)
}

func TestDelete(t *testing.T) {
	notFound := run.Step{Argv: lvsArgv("vol/gone"), ExitCode: 5, Stderr: "  Failed to find logical volume \"vol/gone\"\n"}
	f := newFixture(t,
		notFound,
		// zero-clear under a local exclusive lock, then remove
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"})},
		run.Step{Argv: argv("lvchange -aey vol/v1")},
		run.Step{Argv: argv("dd if=/dev/zero of=/dev/vol/v1 bs=1M count=10485760 iflag=count_bytes oflag=direct conv=fsync status=none")},
		run.Step{Argv: argv("lvchange -an vol/v1")},
		run.Step{Argv: argv("lvremove -y vol/v1")},
		// active on another host: the local lock is refused, nothing removed
		run.Step{Argv: lvsArgv("vol/v2"), Stdout: lvsJSON([3]string{"v2", "U2", "1073741824"})},
		run.Step{Argv: argv("lvchange -aey vol/v2"), ExitCode: 5, Stderr: "  LV locked by other host: vol/v2\n"},
		// shred of the whole LV when no size is given
		run.Step{Argv: lvsArgv("vol/v3"), Stdout: lvsJSON([3]string{"v3", "U3", "1073741824"})},
		run.Step{Argv: argv("lvchange -aey vol/v3")},
		run.Step{Argv: argv("shred -n 3 -s 1073741824 /dev/vol/v3")},
		run.Step{Argv: argv("lvchange -an vol/v3")},
		run.Step{Argv: argv("lvremove -y vol/v3")},
		// a snapshot origin and a snapshot, with the attrs real lvm2 gave
		run.Step{Argv: lvsArgv("vol/orig"), Stdout: strings.Replace(lvsJSON([3]string{"orig", "U4", "67108864"}), "-wi-------", "owi---s---", 1)},
		run.Step{Argv: lvsArgv("vol/snap1"), Stdout: strings.Replace(lvsJSON([3]string{"snap1", "U5", "33554432"}), "-wi-------", "swi---s---", 1)},
	)
	ctx := context.Background()
	{
		ok, err := f.svc.Delete(ctx, f.ref(t, "gone"), ClearNone, 0)
		if ok {
			t.Fatal("missing volume: ok = true, want false")
		}
		if err != nil {
			t.Fatalf("missing volume: err = %v, want nil", err)
		}
	}
	{
		ok, err := f.svc.Delete(ctx, f.ref(t, "v1"), ClearZero, 10<<20)
		if !ok {
			t.Fatal("ok = false, want true")
		}
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
	}
	_, err := f.svc.Delete(ctx, f.ref(t, "v2"), ClearZero, 0)
	wantClass(t, err, errdefs.ErrLockConflict)
	{
		ok, err := f.svc.Delete(ctx, f.ref(t, "v3"), ClearShred, 0)
		if !ok {
			t.Fatal("ok = false, want true")
		}
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
	}
	for _, name := range []string{"orig", "snap1"} {
		_, err = f.svc.Delete(ctx, f.ref(t, name), ClearNone, 0)
		wantClass(t, err, errdefs.ErrVolumeInUse)
	}
	f.held.Set(state.HeldLV{VG: "vol", LV: "attached", Mode: state.Exclusive})
	_, err = f.svc.Delete(ctx, f.ref(t, "attached"), ClearNone, 0)
	wantClass(t, err, errdefs.ErrVolumeInUse)
}

func TestExtend(t *testing.T) {
	one := lvsJSON([3]string{"v1", "U1", "1073741824"})
	f := newFixture(t,
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: one}, // shrink refused
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: one}, // same size: no-op
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: one}, // inactive everywhere: plain
		run.Step{Argv: argv("lvextend -L 2147483648b vol/v1")},
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: one}, // shared on another host
		run.Step{Argv: argv("lvextend -L 2147483648b vol/v1"), ExitCode: 5, Stderr: "  LV locked by other host: vol/v1\n"},
		run.Step{Argv: argv("lvextend -L 2147483648b --lockopt shupdate,norefresh vol/v1")},
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: one},
		run.Step{Argv: argv("lvchange -asy vol/v1")},
		run.Step{Argv: lvsArgv("vol/v1"), Stdout: one}, // shared here
		run.Step{Argv: argv("lvextend -L 3221225472b --lockopt shupdate,norefresh vol/v1")},
	)
	ctx := context.Background()
	r := f.ref(t, "v1")
	f.svc.opts.Gate = nil
	_, err := f.svc.Extend(ctx, r, 0)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	{
		e, err := f.svc.Extend(ctx, r, 1)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if e.SizeBytes != GiB {
			t.Fatalf("e.SizeBytes = %v, want %v", e.SizeBytes, GiB)
		}
		if e.RefreshOthers {
			t.Fatal("e.RefreshOthers = true, want false")
		}
	}
	{
		e, err := f.svc.Extend(ctx, r, 2)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if e.RefreshOthers {
			t.Fatal("e.RefreshOthers = true, want false")
		}
	}
	{
		e, err := f.svc.Extend(ctx, r, 2)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if !e.RefreshOthers {
			t.Fatal("e.RefreshOthers = false, want true")
		}
	}
	f.svc.Activate(ctx, r, Shared)
	{
		e, err := f.svc.Extend(ctx, r, 3)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if !e.RefreshOthers {
			t.Fatal("e.RefreshOthers = false, want true")
		}
		if e.SizeBytes != 3*GiB {
			t.Fatalf("e.SizeBytes = %v, want %v", e.SizeBytes, 3*GiB)
		}
	}
}

func TestListReadsModesFromLvmlockd(t *testing.T) {
	info := "VG vol lock_type=sanlock X\nLS sanlock lvm_vol\nLK LV ex U1\nLK LV sh U2\nLK LV un U3\n"
	f := newFixture(t,
		run.Step{Argv: lvsArgv("vol"), Stdout: lvsJSON([3]string{"v1", "U1", "1073741824"}, [3]string{"v2", "U2", "1073741824"}, [3]string{"v3", "U3", "1073741824"})},
		run.Step{Argv: argv("lvmlockctl --info"), Stdout: info},
	)
	vols, err := f.svc.List(context.Background(), "")
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(vols) != 3 {
		t.Fatalf("len(vols) = %v, want 3", len(vols))
	}
	if vols[0].Mode != Exclusive {
		t.Fatalf("vols[0].Mode = %v, want %v", vols[0].Mode, Exclusive)
	}
	if !vols[0].ActiveHere {
		t.Fatal("vols[0].ActiveHere = false, want true")
	}
	if vols[1].Mode != Shared {
		t.Fatalf("vols[1].Mode = %v, want %v", vols[1].Mode, Shared)
	}
	if vols[2].ActiveHere {
		t.Fatal("vols[2].ActiveHere = true, want false")
	}
}

// Sizes are GiB counts: 2^34+1 GiB wrapped around to 1 GiB in bytes and
// created a 1 GiB volume. Anything beyond LVM's largest LV is refused
// before a command runs (the scripted runner has no steps).
func TestSizesBeyondLVMAreRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := f.ref(t, "v1")
	huge := uint64(1)<<34 + 1
	_, err := f.svc.Create(ctx, r, huge)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = f.svc.Extend(ctx, r, huge)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = f.svc.CreateSnapshot(ctx, f.ref(t, "s1"), "v1", huge)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = f.svc.Clone(ctx, f.ref(t, "c1"), "v1", huge)
	wantClass(t, err, errdefs.ErrInvalidArgument)
}

// An LV active here that the agent did not activate (an operator, an
// interrupted request): held.json does not list it, lvs does; delete with
// clearing is refused before the wipe's activation and dd.
func TestDeleteRefusesAnLVActiveHereButNotRecorded(t *testing.T) {
	active := strings.Replace(lvsJSON([3]string{"v1", "U1", "1073741824"}), `"lv_attr":"-wi-------"`, `"lv_attr":"-wi-ao----"`, 1)
	f := newFixture(t, run.Step{Argv: lvsArgv("vol/v1"), Stdout: active})
	_, err := f.svc.Delete(context.Background(), f.ref(t, "v1"), ClearZero, 0)
	wantClass(t, err, errdefs.ErrVolumeInUse)
}

// With [lvm] allowed_names set to cinder's templates, a request naming any
// other LV of the VG (a host's own LV, an operator's) is refused before a
// command runs: publishing on the agents' topic no longer reaches them.
func TestAllowedNamesBeforeAnyCommand(t *testing.T) {
	f := newFixture(t)
	svc, err := New(f.svc.lvm, f.svc.locks, f.svc.wiper, f.held, Options{
		VolumeGroups: []string{"vol"}, AllowedNames: []string{"volume-*", "_snapshot-*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root", "swap", "volume", "x.clone"} {
		{
			_, err := svc.Resolve("", name)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("%s: err = %v, want errdefs.ErrInvalidArgument", name, err)
			}
			if !strings.Contains(err.Error(), "allowed_names") {
				t.Errorf("%s: err.Error() = %q, want it to contain \"allowed_names\"", name, err.Error())
			}
		}
	}
	for _, name := range []string{"volume-1f2e", "_snapshot-7"} {
		if _, err := svc.Resolve("", name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Second names (a clone's source, a snapshot's origin) go through it too.
	ctx := context.Background()
	if _, err := svc.Clone(ctx, Ref{VG: "vol", LV: "volume-2"}, "root", 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("clone of root: %v, want InvalidArgument", err)
	}
	if _, err := svc.CreateSnapshot(ctx, Ref{VG: "vol", LV: "_snapshot-8"}, "root", 1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("snapshot of root: %v, want InvalidArgument", err)
	}
	if _, err := New(nil, nil, nil, nil, Options{VolumeGroups: []string{"vol"}, AllowedNames: []string{"["}}); err == nil {
		t.Fatal("a malformed pattern was accepted")
	}
}
