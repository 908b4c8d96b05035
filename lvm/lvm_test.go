package lvm

import (
	"context"
	"errors"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

var ctx = context.Background()

func newClient(t *testing.T, steps ...run.Step) (*Client, *run.Scripted) {
	s := run.NewScripted(t, steps...)
	return New(s, Options{VolumeGroups: []string{"vol", "other"}, Timeout: time.Minute}), s
}

var (
	vgsArgv = []string{"vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
		"vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,lv_count,vg_lock_type,vg_lock_args"}
	lvsArgv = []string{"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
		"lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_lockargs,origin,lv_active_locally,lv_active_exclusively,lv_active_remotely,lv_device_open,lv_tags"}
)

func argv(base []string, extra ...string) []string { return append(slices.Clone(base), extra...) }

func TestVGs(t *testing.T) {
	out := fixture.Text(t, "vgs.01-basic.after-lvcreate.bytes.json")
	c, _ := newClient(t,
		run.Step{Argv: argv(vgsArgv, "vol"), Stdout: out},
		run.Step{Argv: argv(vgsArgv, "vol", "other"), Stdout: out},
		run.Step{Argv: argv(vgsArgv, "vol"), ExitCode: 5, Stderr: "  Volume group \"vol\" not found\n  Cannot process volume group vol\n"},
	)
	vgs, err := c.VGs(ctx, "vol")
	if err != nil {
		t.Fatal(err)
	}
	want := VG{Name: "vol", UUID: "efq7Ap-2Z1n-Z0PC-FHD9-SU9H-L4Mv-WYdupG", Size: 2143289344, Free: 1673527296,
		ExtentSize: 4194304, LVCount: 3, LockType: "sanlock", LockArgs: "1.0.0:lvmlock"}
	if len(vgs) != 1 {
		t.Fatalf("got: len(vgs) = %v, want 1", len(vgs))
	}
	if vgs[0] != want {
		t.Fatalf("got: vgs[0] = %v, want %v", vgs[0], want)
	}
	if _, err := c.VGs(ctx); err != nil { // every configured VG
		t.Fatal(err)
	}
	if _, err := c.VGs(ctx, "vol"); !errors.Is(err, errdefs.ErrVolumeGroupNotFound) {
		t.Fatalf("want VG not found, got %v", err)
	}
}

func TestLVs(t *testing.T) {
	out := fixture.Text(t, "lvs.01-basic.lv1-sh-lv2-sh.bytes.json")
	one := strings.Replace(out, "},\n", "}\n", 1)
	one = one[:strings.Index(one, "}\n")+2] + "              ]\n          }\n      ]\n  }\n"
	c, _ := newClient(t,
		run.Step{Argv: argv(lvsArgv, "vol"), Stdout: out},
		run.Step{Argv: argv(lvsArgv, "vol/lv1"), Stdout: one},
		run.Step{Argv: argv(lvsArgv, "vol/lv9"), ExitCode: 5, Stderr: "  Failed to find logical volume \"vol/lv9\"\n"},
		run.Step{Argv: argv(lvsArgv, "vol/lv1"), Stdout: out},
		run.Step{Argv: argv(lvsArgv, "vol"), Stdout: "not json"},
	)
	lvs, err := c.LVs(ctx, "vol")
	if err != nil {
		t.Fatal(err)
	}
	if len(lvs) != 3 {
		t.Fatalf("got %d LVs", len(lvs))
	}
	lv1 := lvs[0]
	if lv1.Name != "lv1" || lv1.VG != "vol" || lv1.UUID != "5GAkzr-fbKb-tu8D-M6M1-3ADI-fiMs-ohPD47" || lv1.Size != 64<<20 ||
		lv1.LockArgs != "1.0.0:70254592" || !lv1.ActiveLocally || lv1.DeviceOpen || lv1.Hidden || !lv1.Attr.Active() {
		t.Fatalf("lv1: %+v", lv1)
	}
	// lv1 is held shared, yet 2.03.16 reports it "active exclusively".
	if !lv1.ActiveExclusively {
		t.Fatal("lv1 flags: lv1.ActiveExclusively = false, want true")
	}
	if lv1.ActiveRemotely {
		t.Fatal("lv1 flags: lv1.ActiveRemotely = true, want false")
	}
	{
		lv3 := lvs[2]
		if lv3.Attr.Active() {
			t.Fatal("lv3 must be inactive: lv3.Attr.Active() = true, want false")
		}
		if lv3.ActiveLocally {
			t.Fatal("lv3 must be inactive: lv3.ActiveLocally = true, want false")
		}
		if lv3.ActiveExclusively {
			t.Fatal("lv3 must be inactive: lv3.ActiveExclusively = true, want false")
		}
	}
	lv, err := c.LV(ctx, "vol", "lv1")
	if err != nil {
		t.Fatalf("LV: err = %v, want nil", err)
	}
	if lv.Name != "lv1" {
		t.Fatalf("LV: lv.Name = %q, want \"lv1\"", lv.Name)
	}
	if _, err := c.LV(ctx, "vol", "lv9"); !errors.Is(err, errdefs.ErrVolumeNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	if _, err := c.LV(ctx, "vol", "lv1"); errdefs.ClassOf(err) != errdefs.ErrUnknown {
		t.Fatalf("three rows for one LV must fail: %v", err)
	}
	if _, err := c.LVs(ctx, "vol"); err == nil {
		t.Fatal("garbage output must fail")
	}
}

func TestRecordedReportsWithoutByteUnitsAreRefused(t *testing.T) {
	for _, name := range []string{"lvs.01-basic.after-lvcreate.recorded.json", "lvs.01-basic.lv1-sh-lv2-sh.recorded.json"} {
		{
			_, err := ParseLVs([]byte(fixture.Text(t, name)))
			if err == nil {
				t.Fatal("err = nil, want non-nil")
			}
			if !strings.Contains(err.Error(), `lv_size "64.00m"`) {
				t.Fatalf("err.Error() = %q, want it to contain `lv_size \"64.00m\"`", err.Error())
			}
		}
	}
	{
		_, err := ParseVGs([]byte(fixture.Text(t, "vgs.01-basic.after-lvcreate.recorded.json")))
		if err == nil {
			t.Fatal("vgs: want a size error, got: err = nil, want non-nil")
		}
		if !strings.Contains(err.Error(), `"<2.00g"`) {
			t.Fatalf("vgs: want a size error, got: err.Error() = %q, want it to contain `\"<2.00g\"`", err.Error())
		}
	}
}

// The structure of a real report (extra columns, hidden LV in brackets,
// open device) parses once the sizes are in bytes.
func TestRecordedReportStructure(t *testing.T) {
	rec := fixture.Text(t, "lvs.01-basic.after-lvcreate.recorded.json")
	rec = strings.ReplaceAll(strings.ReplaceAll(rec, `"64.00m"`, `"67108864"`), `"256.00m"`, `"268435456"`)
	lvs, err := ParseLVs([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	if len(lvs) != 4 {
		t.Fatalf("got %d", len(lvs))
	}
	lock := lvs[3]
	if lock.Name != "lvmlock" {
		t.Fatalf("[lvmlock]: lock.Name = %q, want \"lvmlock\"", lock.Name)
	}
	if !lock.Hidden {
		t.Fatal("[lvmlock]: lock.Hidden = false, want true")
	}
	if lock.Size != 256<<20 {
		t.Fatalf("[lvmlock]: lock.Size = %v, want %v", lock.Size, 256<<20)
	}
	if !lock.Attr.DeviceOpen {
		t.Fatal("[lvmlock]: lock.Attr.DeviceOpen = false, want true")
	}
	if lock.UUID != "" {
		t.Fatalf("[lvmlock]: lock.UUID = %q, want \"\"", lock.UUID)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		`{"report":[{"lv":[{"lv_name":"", "vg_name":"vol"}]}]}`,
		`{"report":[{"lv":[{"lv_name":"a", "vg_name":"vol", "lv_size":"1", "lv_attr":"-wi"}]}]}`,
	} {
		if _, err := ParseLVs([]byte(in)); err == nil {
			t.Errorf("%s: want error", in)
		}
	}
	for _, in := range []string{
		`{"report":[{"vg":[{"vg_name":""}]}]}`,
		`{"report":[{"vg":[{"vg_name":"v", "vg_size":"1", "vg_free":"x"}]}]}`,
		`{"report":[{"vg":[{"vg_name":"v", "vg_size":"1", "vg_free":"1", "vg_extent_size":"-1"}]}]}`,
		`{"report":[{"vg":[{"vg_name":"v", "vg_size":"1", "vg_free":"1", "vg_extent_size":"1", "lv_count":"x"}]}]}`,
		`[`,
	} {
		if _, err := ParseVGs([]byte(in)); err == nil {
			t.Errorf("%s: want error", in)
		}
	}
}

func TestParseLVAttr(t *testing.T) {
	// What the tools read of an attr string, comparable in one go.
	type facts struct {
		VolumeType, AllocationPolicy, TargetType               byte
		Writable, FixedMinor, Active, Suspended, DeviceOpen    bool
		Zeroing, Partial, SkipActivation, IsOrigin, IsSnapshot bool
	}
	for attr, want := range map[string]facts{
		"owi-aos---": {VolumeType: 'o', AllocationPolicy: 'i', TargetType: 's', Writable: true, Active: true, DeviceOpen: true, IsOrigin: true},
		"-rimsot-pk": {VolumeType: '-', AllocationPolicy: 'i', TargetType: 't', FixedMinor: true, Active: true, Suspended: true,
			DeviceOpen: true, Partial: true, SkipActivation: true},
	} {
		a, err := ParseLVAttr(attr)
		if err != nil {
			t.Fatal(err)
		}
		got := facts{a.VolumeType, a.AllocationPolicy, a.TargetType, a.Writable(), a.FixedMinor, a.Active(), a.Suspended(),
			a.DeviceOpen, a.Zeroing, a.Partial(), a.SkipActivation, (LV{Attr: a}).IsOrigin(), (LV{Attr: a}).IsSnapshot()}
		if got != want {
			t.Errorf("ParseLVAttr(%q):\n got %+v\nwant %+v", attr, got, want)
		}
	}
	if _, err := ParseLVAttr("-wi-a"); err == nil {
		t.Fatal("short attr must fail")
	}
}

func TestActivateBatch(t *testing.T) {
	c, _ := newClient(t,
		run.Step{Argv: []string{"lvchange", "-aey", "vol/lv1", "vol/lv2"}},
		run.Step{Argv: []string{"lvchange", "-asy", "vol/lv1"}},
		run.Step{Argv: []string{"lvchange", "-an", "vol/lv1", "vol/lv2"}},
	)
	res, err := c.Activate(ctx, Exclusive, "vol", "lv1", "lv2", "lv1")
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if !slices.Equal(res.Changed, []string{"lv1", "lv2"}) {
		t.Fatal("slices.Equal(res.Changed, []string{\"lv1\", \"lv2\"}) = false, want true")
	}
	if len(res.Failed) != 0 {
		t.Fatalf("len(res.Failed) = %v, want 0", len(res.Failed))
	}
	if _, err := c.Activate(ctx, Shared, "vol", "lv1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deactivate(ctx, "vol", "lv1", "lv2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Activate(ctx, ActivationMode(9), "vol", "lv1"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad mode: %v", err)
	}
	if Exclusive.String() != "exclusive" {
		t.Fatalf("mode names: Exclusive.String() = %q, want \"exclusive\"", Exclusive.String())
	}
	if Shared.String() != "shared" {
		t.Fatalf("mode names: Shared.String() = %q, want \"shared\"", Shared.String())
	}
	if ActivationMode(9).String() != "Mode(9)" {
		t.Fatalf("mode names: ActivationMode(9).String() = %q, want \"Mode(9)\"", ActivationMode(9).String())
	}
}

// Recorded on a lab guest: one LV's lease held elsewhere; lvchange skips it,
// activates the others and exits 5.
func TestActivateBatchPartialFailure(t *testing.T) {
	stderr := fixture.Text(t, "lab/lab-batch-conflict2.stderr")
	c, _ := newClient(t,
		run.Step{Argv: []string{"lvchange", "-aey", "vol/lv49", "vol/lv50", "vol/lv51"}, ExitCode: 5, Stderr: stderr},
		run.Step{Argv: []string{"lvchange", "-aey", "vol/lv1", "vol/lv2"}, ExitCode: 5,
			Stderr: "  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n"},
	)
	res, err := c.Activate(ctx, Exclusive, "vol", "lv49", "lv50", "lv51")
	if err == nil {
		t.Fatal("err = nil, want non-nil")
	}
	if !slices.Equal(res.Changed, []string{"lv49", "lv51"}) {
		t.Fatal("slices.Equal(res.Changed, []string{\"lv49\", \"lv51\"}) = false, want true")
	}
	if len(res.Failed) != 1 {
		t.Fatalf("len(res.Failed) = %v, want 1", len(res.Failed))
	}
	if errdefs.ClassOf(res.Failed["lv50"]) != errdefs.ErrUnknown {
		t.Fatalf("lv50: errdefs.ClassOf(res.Failed[\"lv50\"]) = %v, want %v", errdefs.ClassOf(res.Failed["lv50"]), errdefs.ErrUnknown)
	}
	if !strings.Contains(res.Failed["lv50"].Error(), "error -221") {
		t.Fatalf("lv50: res.Failed[\"lv50\"].Error() = %q, want it to contain \"error -221\"", res.Failed["lv50"].Error())
	}
	res, err = c.Activate(ctx, Exclusive, "vol", "lv1", "lv2")
	var lc *errdefs.LockConflictError
	if !errors.As(err, &lc) {
		t.Fatal("errors.As(err, &lc) = false, want true")
	}
	if lc.LV != "lv1" {
		t.Fatalf("lc.LV = %q, want \"lv1\"", lc.LV)
	}
	if !slices.Equal(res.Changed, []string{"lv2"}) {
		t.Fatal("slices.Equal(res.Changed, []string{\"lv2\"}) = false, want true")
	}
	if !errors.Is(res.Failed["lv1"], errdefs.ErrLockConflict) {
		t.Fatalf("lv1: %v", res.Failed["lv1"])
	}
}

// A failure that names no LV (VG level, timeout) leaves every LV failed.
func TestActivateBatchWholeFailure(t *testing.T) {
	timeout := &run.Error{Argv: []string{"lvchange"}, ExitCode: -1, TimedOut: true, Err: context.DeadlineExceeded}
	c, _ := newClient(t,
		run.Step{Argv: []string{"lvchange", "-aey", "vol/lv1", "vol/lv2"}, ExitCode: 5,
			Stderr: "  VG vol lock skipped: lock start in progress\n  Cannot access VG vol due to failed lock.\n"},
		run.Step{Argv: []string{"lvchange", "-an", "vol/lv1", "vol/lv2"}, Err: timeout},
	)
	res, err := c.Activate(ctx, Exclusive, "vol", "lv1", "lv2")
	if !errors.Is(err, errdefs.ErrLockStartInProgress) {
		t.Fatalf("err = %v, want errdefs.ErrLockStartInProgress", err)
	}
	if len(res.Changed) != 0 {
		t.Fatalf("len(res.Changed) = %v, want 0", len(res.Changed))
	}
	if !errors.Is(res.Failed["lv2"], errdefs.ErrLockStartInProgress) {
		t.Fatalf("res.Failed[\"lv2\"] = %v, want errdefs.ErrLockStartInProgress", res.Failed["lv2"])
	}
	res, err = c.Deactivate(ctx, "vol", "lv1", "lv2")
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("err = %v, want errdefs.ErrCommandTimeout", err)
	}
	if len(res.Failed) != 2 {
		t.Fatalf("len(res.Failed) = %v, want 2", len(res.Failed))
	}
}

func TestLockStartStopAndRefresh(t *testing.T) {
	var timeouts []time.Duration
	var calls [][]string
	answers := []run.Result{{}, {}, {}, {}}
	r := run.Func(func(_ context.Context, cmd run.Cmd) (run.Result, error) {
		calls = append(calls, cmd.Argv)
		timeouts = append(timeouts, cmd.Timeout)
		if cmd.Argv[1] == "--lock-stop" && len(calls) == 2 {
			return run.Result{ExitCode: 5}, &run.Error{Argv: cmd.Argv, ExitCode: 5, Stderr: "  VG vol stop failed: LVs must first be deactivated\n"}
		}
		return answers[0], nil
	})
	c := New(r, Options{VolumeGroups: []string{"vol"}, Timeout: time.Minute})
	if err := c.LockStart(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	if err := c.LockStop(ctx, "vol"); !errors.Is(err, errdefs.ErrVolumeInUse) {
		t.Fatalf("lock-stop with active LVs: %v", err)
	}
	if err := c.LockStop(ctx, "vol"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, "vol", "lv1", "lv2"); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"vgchange", "--lock-start", "vol"}, {"vgchange", "--lock-stop", "vol"}, {"vgchange", "--lock-stop", "vol"}, {"lvchange", "--refresh", "vol/lv1", "vol/lv2"}}
	if !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("calls %q", calls)
	}
	if timeouts[0] != DefaultLockStartTimeout {
		t.Fatalf("timeouts: timeouts[0] = %v, want %v", timeouts[0], DefaultLockStartTimeout)
	}
	if timeouts[1] != time.Minute {
		t.Fatalf("timeouts: timeouts[1] = %v, want %v", timeouts[1], time.Minute)
	}
}

func TestCreateRemoveExtend(t *testing.T) {
	c, _ := newClient(t,
		run.Step{Argv: []string{"lvcreate", "-an", "-Zn", "-y", "-n", "volume-1", "-L", "1073741824b", "vol"},
			Stderr: "  WARNING: Logical volume vol/volume-1 not zeroed.\n  Logical volume \"volume-1\" created.\n"},
		run.Step{Argv: []string{"lvcreate", "-an", "-Zn", "-y", "-n", "volume-2", "-L", "1024b", "vol"}, ExitCode: 5,
			Stderr: "  Logical Volume \"volume-2\" already exists in volume group \"vol\"\n"},
		run.Step{Argv: []string{"lvcreate", "-an", "-Zn", "-y", "-n", "volume-3", "-L", "1024b", "--addtag", "a_tag", "vol"}},
		run.Step{Argv: []string{"lvremove", "-y", "vol/volume-1"}, ExitCode: 5, Stderr: "  Logical volume vol/volume-1 in use.\n"},
		run.Step{Argv: []string{"lvremove", "-y", "vol/volume-1"}},
		run.Step{Argv: []string{"lvextend", "-L", "2147483648b", "vol/volume-1"}},
		run.Step{Argv: []string{"lvextend", "-L", "2147483648b", "--lockopt", "shupdate,norefresh", "vol/volume-1"}},
		// lvm2 2.03.16 fails an extend to the current size (lv_manip.c:5775).
		run.Step{Argv: []string{"lvextend", "-L", "2147483648b", "vol/volume-1"}, ExitCode: 5,
			Stderr: "  New size (512 extents) matches existing size (512 extents).\n"},
		run.Step{Argv: []string{"lvextend", "-L", "2147483648b", "vol/volume-1"}, ExitCode: 5,
			Stderr: "  Insufficient free space: 256 extents needed, but only 10 available\n"},
	)
	if err := c.Create(ctx, "vol", "volume-1", 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "vol", "volume-2", 1000); !errors.Is(err, errdefs.ErrVolumeExists) {
		t.Fatalf("want exists, got %v", err)
	}
	if err := c.Create(ctx, "vol", "volume-3", 1000, "a_tag"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "vol", "volume-1"); !errors.Is(err, errdefs.ErrVolumeInUse) {
		t.Fatalf("want in use, got %v", err)
	}
	if err := c.Remove(ctx, "vol", "volume-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Extend(ctx, "vol", "volume-1", 2<<30, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Extend(ctx, "vol", "volume-1", 2<<30, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Extend(ctx, "vol", "volume-1", 2<<30, false); err != nil {
		t.Fatalf("same size must succeed: %v", err)
	}
	if err := c.Extend(ctx, "vol", "volume-1", 2<<30, false); !errors.Is(err, errdefs.ErrInsufficientSpace) {
		t.Fatalf("want insufficient space, got %v", err)
	}
}

// Every operation refuses bad names, sizes and VGs outside the allow-list
// before running anything: the scripted runner has no step, so any command
// would fail the test.
func TestRefusedBeforeAnyCommand(t *testing.T) {
	c, s := newClient(t)
	empty := New(s, Options{})
	long := strings.Repeat("a", 128)
	ops := map[string]func() error{
		"VGs outside allow-list": func() error { _, err := c.VGs(ctx, "vol", "rogue"); return err },
		"VGs nothing configured": func() error { _, err := empty.VGs(ctx); return err },
		"VGs bad name":           func() error { _, err := c.VGs(ctx, "-vol"); return err },
		"LVs outside":            func() error { _, err := c.LVs(ctx, "rogue"); return err },
		"LVs empty allow-list":   func() error { _, err := empty.LVs(ctx, "vol"); return err },
		"LV bad LV":              func() error { _, err := c.LV(ctx, "vol", "a/b"); return err },
		"LockStart outside":      func() error { return c.LockStart(ctx, "rogue") },
		"LockStop dots":          func() error { return c.LockStop(ctx, "..") },
		"Activate no LVs":        func() error { _, err := c.Activate(ctx, Exclusive, "vol"); return err },
		"Activate one bad LV":    func() error { _, err := c.Activate(ctx, Shared, "vol", "ok", "snapshot1"); return err },
		"Activate outside":       func() error { _, err := c.Activate(ctx, Exclusive, "rogue", "lv1"); return err },
		"Deactivate lvmlock":     func() error { _, err := c.Deactivate(ctx, "vol", "lvmlock"); return err },
		"Refresh long":           func() error { _, err := c.Refresh(ctx, "vol", long); return err },
		"Create reserved":        func() error { return c.Create(ctx, "vol", "x_tmeta", 1) },
		"Create zero size":       func() error { return c.Create(ctx, "vol", "x", 0) },
		"Create bad tag":         func() error { return c.Create(ctx, "vol", "x", 1, "a tag") },
		"Create huge size":       func() error { return c.Create(ctx, "vol", "x", 1<<60) },
		"Create outside":         func() error { return c.Create(ctx, "rogue", "x", 1) },
		"Remove pvmove":          func() error { return c.Remove(ctx, "vol", "pvmove0") },
		"Extend space":           func() error { return c.Extend(ctx, "vol", "a b", 1, false) },
		"Extend zero":            func() error { return c.Extend(ctx, "vol", "x", 0, true) },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: want InvalidArgument, got %v", name, err)
		}
	}
	if len(s.Calls()) != 0 {
		t.Fatalf("commands ran: %q", s.Calls())
	}
}
