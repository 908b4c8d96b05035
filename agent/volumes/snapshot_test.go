package volumes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/state"
)

// lvRow is one LV of an lvs report with its attr and origin, as lvm2
// 2.03.16 prints a COW origin ("owi-------") and snapshot ("swi-------").
func lvRow(name, uuid, size, attr, origin string) string {
	return lvRowTagged(name, uuid, size, attr, origin, "")
}

// lvRowTagged is lvRow with lv_tags.
func lvRowTagged(name, uuid, size, attr, origin, tags string) string {
	return fmt.Sprintf(`{"report": [{"lv": [{"lv_name":"%s", "vg_name":"vol", "lv_uuid":"%s", "lv_size":"%s", "lv_attr":"%s", "lv_lockargs":"1.0.0:70254592", "origin":"%s", "lv_active_locally":"", "lv_active_exclusively":"", "lv_active_remotely":"", "lv_device_open":"", "lv_tags":"%s"}]}]}`,
		name, uuid, size, attr, origin, tags)
}

func missing(lv string) run.Step {
	return run.Step{Argv: lvsArgv("vol/" + lv), ExitCode: 5, Stderr: "  Failed to find logical volume \"vol/" + lv + "\"\n"}
}

const (
	gib     = "1073741824"
	plain   = "-wi-------"
	origin  = "owi-------"
	cowSnap = "swi-------"
)

var (
	v1Plain  = run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvRow("v1", "U1", gib, plain, "")}
	v1Origin = run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvRow("v1", "U1", gib, origin, "")}
	s1Snap   = run.Step{Argv: lvsArgv("vol/s1"), Stdout: lvRow("s1", "S1", gib, cowSnap, "v1")}
)

func TestCreateSnapshot(t *testing.T) {
	f := newFixture(t,
		// inactive origin: lvmlockd locks it for lvcreate -s itself
		missing("s1"), v1Plain,
		run.Step{Argv: argv("lvcreate -s -n s1 -L 1073741824b vol/v1"), Stdout: "  Logical volume \"s1\" created.\n"},
		s1Snap, v1Origin,
		// retried: the same snapshot is success
		s1Snap, s1Snap, v1Origin,
		// the name is taken by a plain volume
		run.Step{Argv: lvsArgv("vol/s2"), Stdout: lvRow("s2", "S2", gib, plain, "")},
		// origin held by another host: lvmlockd refuses
		missing("s3"), v1Plain,
		run.Step{Argv: argv("lvcreate -s -n s3 -L 1073741824b vol/v1"), ExitCode: 5,
			Stderr: "  LV locked by other host: vol/v1\n  Failed to lock origin LV vol/v1.\n"},
		// a snapshot of a snapshot
		missing("s4"), s1Snap,
	)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		snap, err := f.svc.CreateSnapshot(ctx, f.ref(t, "s1"), "v1", 1)
		if err != nil {
			t.Fatalf("round: err = %v, want nil", err)
		}
		if snap != (Snapshot{VG: "vol", Name: "s1", Origin: "v1", UUID: "S1", SizeBytes: 1 << 30, COWBytes: 1 << 30}) {
			t.Fatalf("round: snap = %v, want %v", snap, (Snapshot{VG: "vol", Name: "s1", Origin: "v1", UUID: "S1", SizeBytes: 1 << 30, COWBytes: 1 << 30}))
		}
	}
	if _, err := f.svc.CreateSnapshot(ctx, f.ref(t, "s2"), "v1", 1); !errors.Is(err, errdefs.ErrVolumeExists) {
		t.Fatalf("name taken: %v", err)
	}
	var conflict *errdefs.LockConflictError
	{
		_, err := f.svc.CreateSnapshot(ctx, f.ref(t, "s3"), "v1", 1)
		if !errors.As(err, &conflict) {
			t.Fatal("origin held elsewhere: errors.As(err, &conflict) = false, want true")
		}
		if conflict.LV != "v1" {
			t.Fatalf("origin held elsewhere: conflict.LV = %q, want \"v1\"", conflict.LV)
		}
	}
	if _, err := f.svc.CreateSnapshot(ctx, f.ref(t, "s4"), "s1", 1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("snapshot of a snapshot: %v", err)
	}
	for _, bad := range []struct {
		snap, origin string
		size         uint64
	}{{"s5", "v1", 0}, {"v1", "v1", 1}, {"s5", "bad name", 1}} {
		if _, err := f.svc.CreateSnapshot(ctx, f.ref(t, bad.snap), bad.origin, bad.size); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// Held shared here (multi-attach, migration): refused before lvm runs.
func TestCreateSnapshotOfSharedOriginRefused(t *testing.T) {
	f := newFixture(t, missing("s1"), v1Plain)
	if err := f.held.Set(state.HeldLV{VG: "vol", LV: "v1", Mode: state.Shared}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateSnapshot(context.Background(), f.ref(t, "s1"), "v1", 1); !errors.Is(err, errdefs.ErrIncompatibleLockMode) {
		t.Fatalf("%v", err)
	}
}

func TestDeleteSnapshotTakesTheOriginExclusive(t *testing.T) {
	f := newFixture(t,
		missing("gone"),
		v1Plain, // not a snapshot
		// origin inactive: locked -aey here around the removal
		s1Snap,
		run.Step{Argv: argv("lvchange -aey vol/v1")},
		run.Step{Argv: argv("lvremove -y vol/s1"), Stdout: "  Logical volume \"s1\" successfully removed.\n"},
		run.Step{Argv: argv("lvchange -an vol/v1")},
		// origin active on another host: refused, nothing removed
		run.Step{Argv: lvsArgv("vol/s2"), Stdout: lvRow("s2", "S2", gib, cowSnap, "v1")},
		run.Step{Argv: argv("lvchange -aey vol/v1"), ExitCode: 5, Stderr: "  LV locked by other host: vol/v1\n  Failed to lock logical volume vol/v1.\n"},
	)
	ctx := context.Background()
	{
		ok, err := f.svc.DeleteSnapshot(ctx, f.ref(t, "gone"))
		if ok {
			t.Fatal("missing: ok = true, want false")
		}
		if err != nil {
			t.Fatalf("missing: err = %v, want nil", err)
		}
	}
	if _, err := f.svc.DeleteSnapshot(ctx, f.ref(t, "v1")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("not a snapshot: %v", err)
	}
	{
		ok, err := f.svc.DeleteSnapshot(ctx, f.ref(t, "s1"))
		if !ok {
			t.Fatal("delete: ok = false, want true")
		}
		if err != nil {
			t.Fatalf("delete: err = %v, want nil", err)
		}
	}
	if _, err := f.svc.DeleteSnapshot(ctx, f.ref(t, "s2")); !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("origin held elsewhere: %v", err)
	}
}

// Origin attached exclusive here: the snapshot is removed under that lock,
// which stays.
func TestDeleteSnapshotOfOriginHeldHere(t *testing.T) {
	f := newFixture(t, s1Snap, run.Step{Argv: argv("lvremove -y vol/s1")})
	if err := f.held.Set(state.HeldLV{VG: "vol", LV: "v1", Mode: state.Exclusive}); err != nil {
		t.Fatal(err)
	}
	{
		ok, err := f.svc.DeleteSnapshot(context.Background(), f.ref(t, "s1"))
		if !ok {
			t.Fatal("ok = false, want true")
		}
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
	}
}

const ddClone = "dd if=/dev/vol/%s of=/dev/vol/c1.clone bs=4M count=1073741824 iflag=direct,count_bytes oflag=direct conv=fsync status=none"

func TestCloneVolume(t *testing.T) {
	f := newFixture(t,
		// a plain inactive source is read under a shared lock
		v1Plain, missing("c1"), missing("c1.clone"),
		run.Step{Argv: argv("lvchange -asy vol/v1")},
		run.Step{Argv: argv("lvcreate -an -Zn -y -n c1.clone -L 2147483648b --addtag aos_agent_clone_copy vol")},
		run.Step{Argv: argv("lvchange -aey vol/c1.clone")},
		run.Step{Argv: argv(fmt.Sprintf(ddClone, "v1"))},
		run.Step{Argv: argv("lvchange -an vol/c1.clone")},
		run.Step{Argv: argv("lvchange -an vol/v1")},
		run.Step{Argv: argv("lvrename vol c1.clone c1")},
		run.Step{Argv: lvsArgv("vol/c1"), Stdout: lvRow("c1", "C1", "2147483648", plain, "")},
		// retried: done
		v1Plain, run.Step{Argv: lvsArgv("vol/c1"), Stdout: lvRow("c1", "C1", "2147483648", plain, "")},
	)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		v, err := f.svc.Clone(ctx, f.ref(t, "c1"), "v1", 2)
		if err != nil {
			t.Fatalf("round: err = %v, want nil", err)
		}
		if v != (Volume{VG: "vol", LV: "c1", UUID: "C1", SizeBytes: 2 << 30}) {
			t.Fatalf("round: v = %v, want %v", v, (Volume{VG: "vol", LV: "c1", UUID: "C1", SizeBytes: 2 << 30}))
		}
	}
}

// From a snapshot: read with its origin exclusive here. The copy fails: the
// half clone is removed and the origin released; the error says what failed.
func TestCloneFromSnapshotCopyFails(t *testing.T) {
	f := newFixture(t,
		s1Snap, v1Origin, missing("c1"), missing("c1.clone"),
		run.Step{Argv: argv("lvchange -aey vol/v1")},
		run.Step{Argv: argv("lvcreate -an -Zn -y -n c1.clone -L 1073741824b --addtag aos_agent_clone_copy vol")},
		run.Step{Argv: argv("lvchange -aey vol/c1.clone")},
		run.Step{Argv: argv(fmt.Sprintf(ddClone, "s1")), ExitCode: 1, Stderr: "dd: error reading '/dev/vol/s1': Input/output error\n"},
		run.Step{Argv: argv("lvchange -an vol/c1.clone")},
		run.Step{Argv: argv("lvchange -an vol/c1.clone")},
		run.Step{Argv: argv("lvremove -y vol/c1.clone")},
		run.Step{Argv: argv("lvchange -an vol/v1")},
	)
	_, err := f.svc.Clone(context.Background(), f.ref(t, "c1"), "s1", 0)
	if err == nil {
		t.Fatal("err = nil, want non-nil")
	}
	if !strings.Contains(err.Error(), "copying vol/s1 to vol/c1.clone") {
		t.Fatalf("err.Error() = %q, want it to contain \"copying vol/s1 to vol/c1.clone\"", err.Error())
	}
	if !strings.Contains(err.Error(), "Input/output error") {
		t.Fatalf("err.Error() = %q, want it to contain \"Input/output error\"", err.Error())
	}
}

// A copy a crash interrupted is removed and started again; a source another
// host holds exclusively refuses the shared read.
func TestCloneRestartsAndConflicts(t *testing.T) {
	f := newFixture(t,
		v1Plain, missing("c1"),
		run.Step{Argv: lvsArgv("vol/c1.clone"), Stdout: lvRowTagged("c1.clone", "T1", gib, plain, "", "aos_agent_clone_copy")},
		run.Step{Argv: argv("lvchange -an vol/c1.clone")},
		run.Step{Argv: argv("lvremove -y vol/c1.clone")},
		run.Step{Argv: argv("lvchange -asy vol/v1"), ExitCode: 5, Stderr: "  LV locked by other host: vol/v1\n  Failed to lock logical volume vol/v1.\n"},
	)
	if _, err := f.svc.Clone(context.Background(), f.ref(t, "c1"), "v1", 0); !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("%v", err)
	}
}

// Only the agent's own copies are discarded: an X.clone without the
// agent's tag (an operator's volume) or an origin of that name is refused,
// nothing removed; names ending in .clone cannot be created through the API.
func TestCloneNeverDiscardsOthersLVs(t *testing.T) {
	f := newFixture(t,
		v1Plain, missing("c1"),
		run.Step{Argv: lvsArgv("vol/c1.clone"), Stdout: lvRow("c1.clone", "T1", gib, plain, "")},
		v1Plain, missing("c2"),
		run.Step{Argv: lvsArgv("vol/c2.clone"), Stdout: lvRowTagged("c2.clone", "T2", gib, origin, "", "aos_agent_clone_copy")},
	)
	ctx := context.Background()
	for _, target := range []string{"c1", "c2"} {
		if _, err := f.svc.Clone(ctx, f.ref(t, target), "v1", 0); !errors.Is(err, errdefs.ErrVolumeExists) {
			t.Fatalf("clone into %s over a foreign %s.clone: %v, want VolumeExists", target, target, err)
		}
	}
	for name, call := range map[string]func() error{
		"create_volume":   func() error { _, err := f.svc.Create(ctx, f.ref(t, "x.clone"), 1); return err },
		"clone_volume":    func() error { _, err := f.svc.Clone(ctx, f.ref(t, "x.clone"), "v1", 0); return err },
		"create_snapshot": func() error { _, err := f.svc.CreateSnapshot(ctx, f.ref(t, "x.clone"), "v1", 1); return err },
	} {
		if err := call(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("%s named x.clone: %v, want InvalidArgument", name, err)
		}
	}
}

func TestCloneArguments(t *testing.T) {
	f := newFixture(t, run.Step{Argv: lvsArgv("vol/v1"), Stdout: lvRow("v1", "U1", "2147483648", plain, "")})
	ctx := context.Background()
	if _, err := f.svc.Clone(ctx, f.ref(t, "v1"), "v1", 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("same name: %v", err)
	}
	if _, err := f.svc.Clone(ctx, f.ref(t, "c1"), "v1", 1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("smaller than the source: %v", err)
	}
}

// Shared activation of an origin or a snapshot is refused before lvchange:
// lvm2 would report success and keep the origin exclusive.
func TestSharedActivationOfSnapshotsRefused(t *testing.T) {
	f := newFixture(t, v1Origin, s1Snap)
	ctx := context.Background()
	if _, err := f.svc.Activate(ctx, f.ref(t, "v1"), Shared); !errors.Is(err, errdefs.ErrIncompatibleLockMode) {
		t.Fatalf("origin: %v", err)
	}
	if _, err := f.svc.Activate(ctx, f.ref(t, "s1"), Shared); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("snapshot: %v", err)
	}
}

// Shutdown cancels a clone in the middle of its copy: the copy's LV is
// still released and removed, and the source's shared lock released (the
// release runs on its own context). While the copy runs both are recorded
// as transient, so a crash instead would be undone at the next start.
func TestCloneCancelledMidCopyReleasesEverything(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newFixture(t,
		v1Plain, missing("c1"), missing("c1.clone"),
		run.Step{Argv: argv("lvchange -asy vol/v1")},
		run.Step{Argv: argv("lvcreate -an -Zn -y -n c1.clone -L 1073741824b --addtag aos_agent_clone_copy vol")},
		run.Step{Argv: argv("lvchange -aey vol/c1.clone")},
		run.Step{Argv: argv(fmt.Sprintf(ddClone, "v1")), Err: &run.Error{Argv: []string{"dd"}, ExitCode: -1, Err: context.Canceled}},
		run.Step{Argv: argv("lvchange -an vol/c1.clone")},
		run.Step{Argv: argv("lvchange -an vol/c1.clone")},
		run.Step{Argv: argv("lvremove -y vol/c1.clone")},
		run.Step{Argv: argv("lvchange -an vol/v1")},
	)
	f.before = func(argv []string) {
		if argv[0] != "dd" {
			return
		}
		{
			got := f.transient.List()
			if len(got) != 2 {
				t.Fatalf("transient during the copy: len(got) = %v, want 2", len(got))
			}
			if got[0].LV != "c1.clone" {
				t.Errorf("transient during the copy: got[0].LV = %q, want \"c1.clone\"", got[0].LV)
			}
			if got[0].Mode != state.Exclusive {
				t.Errorf("transient during the copy: got[0].Mode = %v, want %v", got[0].Mode, state.Exclusive)
			}
			if got[1].LV != "v1" {
				t.Errorf("transient during the copy: got[1].LV = %q, want \"v1\"", got[1].LV)
			}
			if got[1].Mode != state.Shared {
				t.Errorf("transient during the copy: got[1].Mode = %v, want %v", got[1].Mode, state.Shared)
			}
		}
		cancel() // shutdown gave up waiting for the request
	}
	if _, err := f.svc.Clone(ctx, f.ref(t, "c1"), "v1", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled clone: %v", err)
	}
	if got := f.transient.List(); len(got) != 0 {
		t.Fatalf("still recorded as transient: %+v", got)
	}
}

// At start the agent releases what a crashed request left active; an LV
// attached here since keeps its lock.
func TestReconcileReleasesLeftovers(t *testing.T) {
	f := newFixture(t, run.Step{Argv: argv("lvchange -an vol/v1")})
	if err := f.transient.Set(state.HeldLV{VG: "vol", LV: "v1", Mode: state.Shared}, state.HeldLV{VG: "vol", LV: "v2", Mode: state.Exclusive}); err != nil {
		t.Fatal(err)
	}
	if err := f.held.Set(state.HeldLV{VG: "vol", LV: "v2", Mode: state.Exclusive}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.transient.List(); len(got) != 0 {
		t.Fatalf("transient after Reconcile: %+v", got)
	}
	if _, ok := f.held.Get("vol", "v2"); !ok {
		t.Fatal("the attachment's record was dropped")
	}
}
