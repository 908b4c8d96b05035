package sim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

const io = 10 * time.Second

type fixture struct {
	t     *testing.T
	clk   *ManualClock
	c     *Cluster
	kills []string
	// killExit is what the kill command returns.
	killExit int
}

func newFixture(t *testing.T, specs ...HostSpec) *fixture {
	t.Helper()
	if len(specs) == 0 {
		specs = []HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2}}
	}
	f := &fixture{t: t, clk: NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))}
	f.c = NewCluster(Options{Hosts: specs, IOTimeout: io, JoinTime: -1, Clock: f.clk,
		RunKill: func(host string, argv []string) int {
			f.kills = append(f.kills, host+":"+strings.Join(argv, " "))
			return f.killExit
		}})
	for _, s := range specs {
		f.ok(s.Name, "vgchange --lock-start vol")
	}
	return f
}

// run returns stdout, stderr and exit code of one command.
func (f *fixture) run(host, cmd string) (string, string, int) {
	f.t.Helper()
	res, err := f.c.Host(host).Run(context.Background(), run.Cmd{Argv: strings.Fields(cmd)})
	var rerr *run.Error
	if errors.As(err, &rerr) {
		return string(res.Stdout), rerr.Stderr, rerr.ExitCode
	}
	if err != nil {
		f.t.Fatalf("%s: %v", cmd, err)
	}
	return string(res.Stdout), string(res.Stderr), 0
}

func (f *fixture) ok(host, cmd string) string {
	f.t.Helper()
	out, errOut, rc := f.run(host, cmd)
	if rc != 0 {
		f.t.Fatalf("%s on %s: rc %d: %s", cmd, host, rc, errOut)
	}
	return out
}

func (f *fixture) fails(host, cmd string, rc int, stderr string) {
	f.t.Helper()
	_, errOut, got := f.run(host, cmd)
	if got != rc || errOut != stderr {
		f.t.Fatalf("%s on %s: rc %d stderr %q, want rc %d stderr %q", cmd, host, got, errOut, rc, stderr)
	}
}

const (
	lockedByOther = "  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n"
	storageFailed = "  VG vol lock skipped: storage failed for sanlock leases\n"
)

func TestCrossHostConflicts(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -Zn -y -n lv1 -L 67108864b vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	// recorded on h2 while h1 held lv1 ex (03-twohost)
	f.fails("h2", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.fails("h2", "lvchange -asy vol/lv1", 5, lockedByOther)
	f.ok("h1", "lvchange -asy vol/lv1")
	f.ok("h2", "lvchange -asy vol/lv1")
	// sh on both: neither can convert to ex
	f.fails("h1", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.ok("h2", "lvchange -an vol/lv1")
	f.ok("h1", "lvchange -aey vol/lv1")
	if got := f.c.State("h1").Locks["lv1"]; got != "ex" {
		t.Fatalf("h1 lock %q", got)
	}
	if out := f.ok("h1", "lvmlockctl --info"); !strings.Contains(out, "LK LV ex ") {
		t.Fatalf("info:\n%s", out)
	}
	if out := f.ok("h2", "lvmlockctl --info"); !strings.Contains(out, "LK LV un ") {
		t.Fatalf("h2 info:\n%s", out)
	}
}

func TestBatchIsNotAtomic(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvcreate -an -n lv2 -L 64m vol")
	f.ok("h2", "lvchange -aey vol/lv1")
	_, errOut, rc := f.run("h1", "lvchange -aey vol/lv1 vol/lv2 vol/nope")
	if rc != 5 {
		t.Fatalf("rc: rc = %v, want 5", rc)
	}
	if errOut != lockedByOther+"  Failed to find logical volume \"vol/nope\"\n" {
		t.Fatalf("rc: errOut = %v, want %v", errOut, lockedByOther+"  Failed to find logical volume \"vol/nope\"\n")
	}
	{
		st := f.c.State("h1")
		if st.Locks["lv2"] != "ex" {
			t.Fatalf("lv2 must be activated although lv1 failed: st.Locks[\"lv2\"] = %q, want \"ex\"", st.Locks["lv2"])
		}
		if st.Active["lv2"] != "linear" {
			t.Fatalf("lv2 must be activated although lv1 failed: st.Active[\"lv2\"] = %q, want \"linear\"", st.Active["lv2"])
		}
		if st.Locks["lv1"] != "" {
			t.Fatalf("lv2 must be activated although lv1 failed: st.Locks[\"lv1\"] = %q, want \"\"", st.Locks["lv1"])
		}
	}
}

func TestLockspaceStates(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "vgchange --lockstop vol")
	f.fails("h1", "lvchange -aey vol/lv1", 5, "  Cannot access VG vol due to failed lock.\n")
	f.fails("h1", "lvcreate -an -n lv2 -L 64m vol", 5, "  Cannot access VG vol due to failed lock.\n")
	_, errOut, _ := f.run("h1", "lvs --reportformat json --units b --nosuffix -o lv_name vol")
	if errOut != "  Reading VG vol without a lock.\n" {
		t.Fatalf("lvs stderr %q", errOut)
	}
	// a join that takes time, started without waiting
	f.c.opt.JoinTime = 3 * io
	f.ok("h1", "vgchange --lock-start --lock-opt nowait vol")
	f.fails("h1", "lvchange -aey vol/lv1", 5, "  VG vol lock skipped: lock start in progress\n  Cannot access VG vol due to failed lock.\n")
	if out := f.ok("h1", "sanlock client status"); !strings.Contains(out, ":0 ADD\n") {
		t.Fatalf("status while joining:\n%s", out)
	}
	f.clk.Advance(3 * io)
	f.c.opt.JoinTime = 0
	f.ok("h1", "lvchange -aey vol/lv1")
	f.fails("h1", "vgchange --lock-stop vol", 5, "  VG vol stop failed: LVs must first be deactivated\n")
	f.c.CrashDaemon("h2", "sanlock")
	f.ok("h2", "vgchange --lock-stop vol")
	f.fails("h2", "vgchange --lock-start vol", 5, "  Skipping global lock: lockspace not found or started\n  VG vol start failed: lock manager sanlock is not running\n")
	{
		out, _, rc := f.run("h2", "systemctl is-active sanlock")
		if out != "failed\n" {
			t.Fatalf("is-active: out = %q, want \"failed\\n\"", out)
		}
		if rc != 3 {
			t.Fatalf("is-active: rc = %v, want 3", rc)
		}
	}
	f.ok("h2", "systemctl start sanlock")
	f.ok("h2", "vgchange --lock-start vol")
}

// loseStorage has h1 hold lv1 ex, configures a kill command exiting
// killExit, and fails all of h1's paths.
func loseStorage(t *testing.T, killExit int) *fixture {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	f.c.SetKillCommand("h1", []string{"/usr/libexec/aos-kill"})
	f.killExit = killExit
	f.c.FailPaths("h1", true)
	return f
}

func TestLeaseFailureWithWorkingKillCommand(t *testing.T) {
	f := loseStorage(t, 0)
	f.clk.Advance(8*io - time.Second)
	if len(f.kills) != 0 {
		t.Fatalf("kill ran before 8 × io_timeout: %v", f.kills)
	}
	f.clk.Advance(time.Second)
	if len(f.kills) != 1 {
		t.Fatalf("kills: len(f.kills) = %v, want 1", len(f.kills))
	}
	if f.kills[0] != "h1:/usr/libexec/aos-kill vol" {
		t.Fatalf("kills: f.kills[0] = %q, want \"h1:/usr/libexec/aos-kill vol\"", f.kills[0])
	}
	f.clk.Advance(10 * io)
	st := f.c.State("h1")
	if st.Resets != 0 {
		t.Fatalf("after kill exit 0: st.Resets = %v, want 0", st.Resets)
	}
	if st.KillRuns != 1 {
		t.Fatalf("after kill exit 0: st.KillRuns = %v, want 1", st.KillRuns)
	}
	if st.LockspaceJoined {
		t.Fatal("after kill exit 0: st.LockspaceJoined = true, want false")
	}
	if len(st.Locks) != 0 {
		t.Fatalf("after kill exit 0: len(st.Locks) = %v, want 0", len(st.Locks))
	}
	f.ok("h2", "lvchange -aey vol/lv1")
}

func TestLeaseFailureResetWhenNotDropped(t *testing.T) {
	f := loseStorage(t, 1)
	f.ok("h1", "multipathd disablequeueing maps")
	f.clk.Advance(8 * io)
	out := f.ok("h1", "sanlock client status -D")
	for _, want := range []string{"space_dead=1", "killing_pids=1", "renewal_last_result=-5", "renew_fail=1"} {
		if !strings.Contains(out, "    "+want+"\n") {
			t.Errorf("status -D lacks %s:\n%s", want, out)
		}
	}
	if out := f.ok("h1", "lvmlockctl --info --dump"); !strings.Contains(out, " kill_vg=1 ") {
		t.Errorf("dump lacks kill_vg=1:\n%s", out)
	}
	// recorded while paths were down after the kill
	f.fails("h1", "lvchange -aey vol/lv1", 5, storageFailed+"  Volume group \"vol\" not found\n  Cannot process volume group vol\n")
	f.fails("h1", "lvchange -an vol/lv1", 5, storageFailed+"  Volume group \"vol\" not found\n  Cannot process volume group vol\n")
	// not recorded for lvcreate: lvmlockd refuses the VG lock itself, as
	// for lvchange above, so no -221
	f.fails("h1", "lvcreate -an -n lv9 -L 64m vol", 5, storageFailed+"  Volume group \"vol\" not found\n  Cannot process volume group vol\n")
	f.fails("h1", "vgchange --lock-start vol", 5, "  Skipping global lock: storage failed for sanlock leases\n  Volume group \"vol\" not found\n  Cannot process volume group vol\n")
	f.fails("h2", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.clk.Advance(4 * io)
	st := f.c.State("h1")
	if st.Resets != 1 {
		t.Fatalf("host must be reset: st.Resets = %v, want 1", st.Resets)
	}
	if len(st.Active) != 0 {
		t.Fatalf("host must be reset: len(st.Active) = %v, want 0", len(st.Active))
	}
	if st.LockspaceJoined {
		t.Fatal("host must be reset: st.LockspaceJoined = true, want false")
	}
	if st.KillRuns != 1 {
		t.Fatalf("host must be reset: st.KillRuns = %v, want 1", st.KillRuns)
	}
	// The reset released nothing on disk: h2 waits for h1's lease to expire.
	f.fails("h2", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.clk.Advance(watchdogFire - killGrace)
	f.ok("h2", "lvchange -aey vol/lv1")
	// the SAN is still down after the reboot, and queueing is back on
	f.ok("h1", "multipathd disablequeueing maps")
	f.fails("h1", "vgchange --lock-start vol", 5, "  Volume group \"vol\" not found\n  Cannot process volume group vol\n")
	f.c.RestorePaths("h1")
	f.ok("h1", "vgchange --lock-start vol")
	f.fails("h1", "lvchange -aey vol/lv1", 5, lockedByOther)
}

// With the watchdog off and no kill command the failed host keeps lv1 active
// while another host takes it after expiry: the split brain seen on real guests.
func TestSplitBrainWithoutWatchdog(t *testing.T) {
	f := newFixture(t, HostSpec{Name: "h1", HostID: 1, NoWatchdog: true}, HostSpec{Name: "h2", HostID: 2})
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	f.c.FailLeaseStorage("h1")
	f.clk.Advance(8*io + watchdogFire - time.Second)
	f.fails("h2", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.clk.Advance(time.Second)
	f.ok("h2", "lvchange -aey vol/lv1")
	{
		a, b := f.c.State("h1"), f.c.State("h2")
		if a.Active["lv1"] != "linear" {
			t.Fatalf("want lv1 active on both: a.Active[\"lv1\"] = %q, want \"linear\"", a.Active["lv1"])
		}
		if b.Active["lv1"] != "linear" {
			t.Fatalf("want lv1 active on both: b.Active[\"lv1\"] = %q, want \"linear\"", b.Active["lv1"])
		}
		if a.Resets != 0 {
			t.Fatalf("want lv1 active on both: a.Resets = %v, want 0", a.Resets)
		}
	}
	if out := f.ok("h2", "sanlock client gets -h 1"); !strings.Contains(out, "h 1 gen 1 timestamp 0 DEAD") {
		t.Fatalf("gets:\n%s", out)
	}
}

func TestRecoveryAfterPathsReturn(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	f.c.DefineDomain("h1", "vm1", "lv1")
	f.ok("h1", "virsh start vm1")
	f.c.FailPaths("h1", true)
	f.clk.Advance(8 * io)
	f.ok("h1", "dmsetup wipe_table vol-lv1")
	{
		st := f.c.State("h1")
		if st.Domains["vm1"] != "paused" {
			t.Fatalf("st.Domains[\"vm1\"] = %q, want \"paused\"", st.Domains["vm1"])
		}
		if st.Active["lv1"] != "error" {
			t.Fatalf("st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
		}
	}
	if out := f.ok("h1", "dmsetup table"); !strings.Contains(out, "vol-lv1: 0 131072 error\n") {
		t.Fatalf("table:\n%s", out)
	}
	f.ok("h1", "virsh destroy vm1")
	f.c.RestorePaths("h1")
	_, errOut, _ := f.run("h1", "lvchange -an vol/lv1")
	if errOut != storageFailed+"  Reading VG vol without a lock.\n" {
		t.Fatalf("-an stderr %q", errOut)
	}
	f.ok("h1", "lvmlockctl --drop vol")
	f.ok("h1", "vgchange --lock-start vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	{
		st := f.c.State("h1")
		if st.Resets != 0 {
			t.Fatalf("st.Resets = %v, want 0", st.Resets)
		}
		if st.Locks["lv1"] != "ex" {
			t.Fatalf("st.Locks[\"lv1\"] = %q, want \"ex\"", st.Locks["lv1"])
		}
	}
}

func TestKillByHand(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	out, errOut, _ := f.run("h1", "lvmlockctl --kill vol")
	if !strings.HasPrefix(out, "lvmlockd lost access to locks in VG vol.\n") {
		t.Fatalf("out = %q, want it to start with \"lvmlockd lost access to locks in VG vol.\\n\"", out)
	}
	if !strings.Contains(errOut, "lvmlockctl_kill_command") {
		t.Fatalf("errOut = %q, want it to contain \"lvmlockctl_kill_command\"", errOut)
	}
	f.fails("h1", "lvchange -aey vol/lv1", 5, storageFailed+"  Cannot access VG vol due to failed lock.\n")
	f.c.SetKillCommand("h2", []string{"/k"})
	f.ok("h2", "lvmlockctl --kill vol")
	if len(f.kills) != 1 {
		t.Fatalf("kills: len(f.kills) = %v, want 1", len(f.kills))
	}
	if f.c.State("h2").KillRuns != 1 {
		t.Fatalf("kills: f.c.State(\"h2\").KillRuns = %v, want 1", f.c.State("h2").KillRuns)
	}
}

func TestExtendSharedAndRefresh(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvchange -asy vol/lv1")
	f.ok("h2", "lvchange -asy vol/lv1")
	f.fails("h1", "lvextend -L 134217728b vol/lv1", 5, "  LV locked by other host: vol/lv1\n")
	// h2 alone, ex: h1 must not extend even with shupdate
	f.ok("h1", "lvchange -an vol/lv1")
	f.ok("h2", "lvchange -aey vol/lv1")
	f.fails("h1", "lvextend --lockopt shupdate -L 134217728b vol/lv1", 5, "  LV locked by other host: vol/lv1\n")
	f.ok("h2", "lvchange -asy vol/lv1")
	f.ok("h1", "lvchange -asy vol/lv1")
	out := f.ok("h1", "lvextend --lockopt shupdate -L 134217728b vol/lv1")
	if !strings.Contains(out, "changed from 64.00 MiB (16 extents) to 128.00 MiB (32 extents)") {
		t.Fatalf("%q", out)
	}
	if tbl := f.ok("h2", "dmsetup table vol-lv1"); !strings.HasPrefix(tbl, "0 131072 linear") {
		t.Fatalf("h2 must keep the old size until refresh: %q", tbl)
	}
	f.ok("h2", "lvchange --refresh vol/lv1")
	if tbl := f.ok("h2", "dmsetup table vol-lv1"); !strings.HasPrefix(tbl, "0 262144 linear") {
		t.Fatalf("after refresh: %q", tbl)
	}
	out = f.ok("h1", "lvs --reportformat json --units b --nosuffix -o lv_name,lv_size,lv_lockargs,lv_uuid vol")
	if !strings.Contains(out, `"lv_size":"134217728", "lv_lockargs":"1.0.0:70254592"`) {
		t.Fatalf("lvs:\n%s", out)
	}
	f.fails("h1", "lvextend --lockopt shupdate -L 64m vol/lv1", 5, "  New size (16 extents) matches existing size (32 extents).\n")
}

func TestCreateRemoveAndOpenDevices(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -n lv1 -L 8m vol") // no -an: active ex on the creator
	f.fails("h1", "lvcreate -an -n lv1 -L 8m vol", 5, "  Logical Volume \"lv1\" already exists in volume group \"vol\"\n")
	f.fails("h1", "lvcreate -an -n big -L 10g vol", 5, "  Volume group \"vol\" has insufficient free space (445 extents): 2560 required.\n")
	f.c.DefineDomain("h1", "vm1", "lv1")
	f.ok("h1", "virsh -c qemu:///system start vm1") // qemu holds lv1 open
	f.fails("h1", "lvchange -an vol/lv1", 5, "  Logical volume vol/lv1 in use.\n")
	f.fails("h1", "dmsetup remove vol-lv1", 1, "device-mapper: remove ioctl on vol-lv1  failed: Device or resource busy\nCommand failed.\n")
	if out := f.ok("h1", "dmsetup info -c --noheadings -o name,open --separator : vol-lv1"); out != "vol-lv1:1\n" {
		t.Fatalf("info %q", out)
	}
	f.ok("h1", "virsh -c qemu:///system destroy vm1")
	f.fails("h2", "lvremove -y vol/lv1", 5, "  LV locked by other host: vol/lv1\n")
	if out := f.ok("h1", "lvremove -y vol/lv1"); out != "  Logical volume \"lv1\" successfully removed.\n" {
		t.Fatalf("%q", out)
	}
	f.fails("h1", "virsh -c qemu:///system start vm1", 1,
		"error: Failed to start domain 'vm1'\nerror: Cannot access storage file '/dev/vol/lv1': No such file or directory\n")
	out := f.ok("h1", "vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,vg_extent_size,lv_count vol")
	want := "  {\n      \"report\": [\n          {\n              \"vg\": [\n" +
		"                  {\"vg_name\":\"vol\", \"vg_size\":\"2143289344\", \"vg_free\":\"1874853888\", \"vg_extent_size\":\"4194304\", \"lv_count\":\"0\"}\n" +
		"              ]\n          }\n      ]\n  }\n"
	if out != want {
		t.Fatalf("vgs:\n%s", out)
	}
}

func TestMultipathAndDomains(t *testing.T) {
	f := newFixture(t)
	f.c.FailPaths("h1", false)
	out := f.ok("h1", "multipathd show paths format %d %t %T")
	if out != "dev dm_st  chk_st\nsda active ready\nsdb failed faulty\n" {
		t.Fatalf("%q", out)
	}
	{
		js := f.ok("h1", "multipathd show maps json")
		if !strings.Contains(js, `"paths" : 1`) {
			t.Fatalf("js = %q, want it to contain `\"paths\" : 1`", js)
		}
		if !strings.Contains(js, `"chk_st" : "faulty"`) {
			t.Fatalf("js = %q, want it to contain `\"chk_st\" : \"faulty\"`", js)
		}
	}
	f.c.RestorePaths("h1")
	f.ok("h1", "lvcreate -an -n lv1 -L 8m vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	f.c.DefineDomain("h1", "vm1", "lv1")
	f.ok("h1", "virsh start vm1")
	f.ok("h1", "virsh suspend vm1")
	f.ok("h1", "virsh resume vm1")
	if out := f.ok("h1", "virsh list --all"); !strings.Contains(out, " 1    vm1    running\n") {
		t.Fatalf("%q", out)
	}
	if out := f.ok("h1", "virsh domblklist vm1"); !strings.Contains(out, " vda      /dev/vol/lv1\n") {
		t.Fatalf("%q", out)
	}
	f.ok("h1", "dmsetup message lun0 0 fail_if_no_path")
	f.c.FailPaths("h1", true)
	if st := f.c.State("h1"); st.Domains["vm1"] != "paused" {
		t.Fatalf("%+v", st)
	}
	f.fails("h2", "virsh start nope", 1, "error: failed to get domain 'nope'\n")
	f.fails("h1", "dd if=/dev/zero of=/dev/vol/lv1 bs=1M", 1, "dd: error writing '/dev/vol/lv1': Input/output error\n")
	f.fails("h2", "dd if=/dev/zero of=/dev/vol/lv1 bs=1M", 1, "dd: failed to open '/dev/vol/lv1': No such file or directory\n")
	f.c.RestorePaths("h1")
	f.ok("h1", "dd if=/dev/zero of=/dev/vol/lv1 bs=1M")
}

func TestHangsAndTimeouts(t *testing.T) {
	f := newFixture(t)
	f.c.HangCommands("h1", "lvs")
	_, err := f.c.Host("h1").Run(context.Background(), run.Cmd{Argv: []string{"lvs", "vol"}, Timeout: time.Millisecond})
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	f.c.HangCommands("h1", "")
	f.ok("h1", "lvs vol")
	// lvmlockd refuses to stop while a lockspace exists
	_, err = f.c.Host("h1").Run(context.Background(), run.Cmd{Argv: []string{"systemctl", "stop", "lvmlockd"}, Timeout: time.Millisecond})
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	f.ok("h1", "vgchange --lock-stop vol")
	f.ok("h1", "systemctl stop lvmlockd")
	{
		_, errOut, rc := f.run("h1", "lvmlockctl --info")
		if rc != 1 {
			t.Fatalf("rc = %v, want 1", rc)
		}
		if errOut != "socket error -111\n" {
			t.Fatalf("errOut = %q, want \"socket error -111\\n\"", errOut)
		}
	}
}

func TestUnknownCommandsAreLoud(t *testing.T) {
	f := newFixture(t)
	for _, cmd := range []string{"rm -rf /", "lvchange --bogus vol/lv1", "sanlock direct dump", "multipathd show config", "dmsetup status", "virsh reboot"} {
		_, errOut, rc := f.run("h1", cmd)
		if rc == 0 {
			t.Errorf("%s: rc = %v, want != 0", cmd, rc)
		}
		if errOut == "" {
			t.Errorf("%s: errOut = %v, want != \"\"", cmd, errOut)
		}
	}
}

func TestSanlockViews(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 8m vol")
	f.ok("h1", "lvchange -asy vol/lv1")
	f.clk.Advance(5 * io)
	f.c.SkewClock("h2", time.Hour)
	hs := f.ok("h1", "sanlock client host_status -D -s lvm_vol")
	if !strings.HasPrefix(hs, "lockspace lvm_vol\n1 timestamp 50\n    last_check=50\n") {
		t.Fatalf("host_status:\\\\n: hs = %q, want it to start with \"lockspace lvm_vol\\n1 timestamp 50\\n    last_check=50\\n\"", hs)
	}
	if !strings.Contains(hs, "2 timestamp 3650\n") {
		t.Fatalf("host_status:\\\\n: hs = %q, want it to contain \"2 timestamp 3650\\n\"", hs)
	}
	st := f.ok("h1", "sanlock client status")
	if !strings.Contains(st, ":70254592:SH p 443\n") {
		t.Fatalf("status:\n%s", st)
	}
	if r := f.ok("h1", "sanlock client renewal -s lvm_vol"); !strings.HasPrefix(r, "timestamp=0 read_ms=1 write_ms=1 next_timeouts=0 next_errors=0\n") {
		t.Fatalf("renewal:\n%s", r)
	}
	f.c.CrashDaemon("h1", "sanlock")
	{
		out, _, rc := f.run("h1", "sanlock client status")
		if rc != 1 {
			t.Fatalf("rc = %v, want 1", rc)
		}
		if out != "status error -111\n" {
			t.Fatalf("out = %q, want \"status error -111\\n\"", out)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("lvchange -aey vol/lv1 vol/lv2")
	f.Add("lvs --reportformat json --units b --nosuffix -o lv_name,lv_size vol")
	f.Add("lvcreate -an -Zn -y -n lv -L 1b vol")
	f.Add("sanlock client status -D")
	f.Add("dmsetup info -c --noheadings -o name,open")
	f.Add("virsh list --all")
	c := NewCluster(Options{Hosts: []HostSpec{{Name: "h", HostID: 1}}, JoinTime: -1})
	h := c.Host("h")
	f.Fuzz(func(t *testing.T, cmd string) {
		argv := strings.Fields(cmd)
		if len(argv) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_, err := h.Run(ctx, run.Cmd{Argv: argv})
		var rerr *run.Error
		if err != nil && !errors.As(err, &rerr) {
			t.Fatalf("%q: %v", cmd, err)
		}
	})
}

// A kill command that fences lets lvmlockctl drop h1's locks, but the
// release cannot reach the dead storage: h2 still waits for the expiry.
func TestDroppedLeasesBarOthersUntilExpiry(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	f.c.SetKillCommand("h1", []string{"/bin/fence"})
	f.c.FailPaths("h1", true)
	f.clk.Advance(8 * io)
	{
		st := f.c.State("h1")
		if st.LockspaceJoined {
			t.Fatal("locks not dropped: st.LockspaceJoined = true, want false")
		}
		if len(st.Locks) != 0 {
			t.Fatalf("locks not dropped: len(st.Locks) = %v, want 0", len(st.Locks))
		}
	}
	f.fails("h2", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.clk.Advance(watchdogFire - time.Second)
	f.fails("h2", "lvchange -aey vol/lv1", 5, lockedByOther)
	f.clk.Advance(time.Second)
	f.ok("h2", "lvchange -aey vol/lv1")
}

// Rejoining with a new generation frees the leases the old one left behind.
func TestRejoinFreesOrphanedLeases(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvchange -aey vol/lv1")
	f.c.SetKillCommand("h1", []string{"/bin/fence"})
	f.c.FailPaths("h1", true)
	f.clk.Advance(8 * io)
	f.c.RestorePaths("h1")
	f.ok("h1", "vgchange --lock-start vol")
	f.ok("h2", "lvchange -aey vol/lv1")
}

// A map suspended for less than the renewal timeout only delays lvm
// commands: the lockspace stays joined and nothing is killed.
func TestShortIOStall(t *testing.T) {
	clk := NewScaledClock(time.Now(), 1000)
	c := NewCluster(Options{Hosts: []HostSpec{{Name: "h1", HostID: 1}}, IOTimeout: io, JoinTime: -1, Clock: clk})
	h := c.Host("h1")
	for _, cmd := range []string{"vgchange --lock-start vol", "lvcreate -an -n lv1 -L 64m vol"} {
		if _, err := h.Run(context.Background(), run.Cmd{Argv: strings.Fields(cmd)}); err != nil {
			t.Fatal(cmd, err)
		}
	}
	c.StallIO("h1", 4*io)
	start := clk.Now()
	if _, err := h.Run(context.Background(), run.Cmd{Argv: strings.Fields("lvchange -aey vol/lv1")}); err != nil {
		t.Fatal(err)
	}
	if waited := clk.Now().Sub(start); waited < 4*io-time.Second {
		t.Fatalf("lvchange did not wait for the resume: %v", waited)
	}
	time.Sleep(10 * io / 1000) // past 8 × io_timeout in sim time
	{
		st := c.State("h1")
		if !st.LockspaceJoined {
			t.Fatal("after a short stall: st.LockspaceJoined = false, want true")
		}
		if st.KillVG {
			t.Fatal("after a short stall: st.KillVG = true, want false")
		}
		if st.Locks["lv1"] != "ex" {
			t.Fatalf("after a short stall: st.Locks[\"lv1\"] = %q, want \"ex\"", st.Locks["lv1"])
		}
	}
}

// wipe_table of several devices goes through them in order and stops at the
// first that does not exist, as dmsetup does.
func TestWipeTableOfSeveralDevices(t *testing.T) {
	f := newFixture(t)
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.ok("h1", "lvcreate -an -n lv2 -L 64m vol")
	f.ok("h1", "lvchange -aey vol/lv1 vol/lv2")
	f.fails("h1", "dmsetup --noudevsync wipe_table vol-lv1 vol-gone vol-lv2", 1,
		"device-mapper: reload ioctl on vol-gone  failed: No such device or address\nCommand failed.\n")
	if st := f.c.State("h1"); st.Active["lv1"] != "error" || st.Active["lv2"] != "linear" {
		t.Fatalf("after stopping at vol-gone: %v", st.Active)
	}
	f.ok("h1", "dmsetup --noudevsync wipe_table vol-lv1 vol-lv2")
	if st := f.c.State("h1"); st.Active["lv2"] != "error" {
		t.Fatalf("lv2: %q, want error", st.Active["lv2"])
	}
}

// With no_path_retry fail (the lab's multipath.conf) I/O without paths
// fails at once: lvm reports the VG missing (a refresh too), lvcreate its VG lock failing
// (as on the lab guests), and restorequeueing brings back failing, not
// queueing.
func TestNoPathRetryFail(t *testing.T) {
	f := newFixture(t, HostSpec{Name: "h1", HostID: 1, NoPathRetryFail: true})
	f.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	f.c.FailPaths("h1", true)
	f.ok("h1", "multipathd restorequeueing maps")
	if _, errOut, rc := f.run("h1", "lvchange -aey vol/lv1"); rc != 5 || !strings.Contains(errOut, `Volume group "vol" not found`) {
		t.Fatalf("lvchange without paths: rc %d, stderr %q", rc, errOut)
	}
	if _, errOut, rc := f.run("h1", "lvcreate -an -n lv2 -L 64m vol"); rc != 5 || errOut != "  VG vol lock failed: error -221\n" {
		t.Fatalf("lvcreate without paths: rc %d, stderr %q", rc, errOut)
	}
	if _, errOut, rc := f.run("h1", "lvchange --refresh vol/lv1"); rc != 5 || !strings.Contains(errOut, `Volume group "vol" not found`) {
		t.Fatalf("refresh without paths: rc %d, stderr %q", rc, errOut)
	}
	// Once the lockspace is gone from lvmlockd too (the fence's drop; lab,
	// chaos-154) lvcreate fails reading the VG, not taking its lock.
	f.ok("h1", "lvmlockctl --drop vol")
	if _, errOut, rc := f.run("h1", "lvcreate -an -n lv2 -L 64m vol"); rc != 5 || !strings.Contains(errOut, `Volume group "vol" not found`) {
		t.Fatalf("lvcreate without paths or lockspace: rc %d, stderr %q", rc, errOut)
	}
}
