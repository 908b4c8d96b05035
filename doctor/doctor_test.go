package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sanlock"
)

func write(t *testing.T, root, path string, content []byte) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o755); err != nil {
		t.Fatal(err)
	}
}

// configuredRoot is a host as `aos-agent install` leaves it, on Debian's
// own lvm.conf/lvmlocal.conf.
func configuredRoot(t *testing.T) string {
	root := t.TempDir()
	conf, err := hostcfg.SetLVM([]byte(fixture.Text(t, "lvm.conf.debian")),
		hostcfg.Setting{Section: "global", Key: "use_lvmlockd", Value: "1"},
		hostcfg.Setting{Section: "global", Key: "lvmlockctl_kill_command", Value: hostcfg.Quote("/usr/local/sbin/aos-agent kill-hook")})
	if err != nil {
		t.Fatal(err)
	}
	local, err := hostcfg.SetLVM([]byte(fixture.Text(t, "lvmlocal.conf.debian")), hostcfg.Setting{Section: "local", Key: "host_id", Value: "7"})
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, "etc/lvm/lvm.conf", conf)
	write(t, root, "etc/lvm/lvmlocal.conf", local)
	write(t, root, "usr/local/sbin/aos-agent", []byte("#!/bin/true\n"))
	write(t, root, "etc/iscsi/initiatorname.iscsi", []byte("## DO NOT EDIT OR REMOVE THIS FILE!\nInitiatorName=iqn.1993-08.org.debian:01:5a1f0c2e9d7b\n"))
	write(t, root, "etc/multipath.conf", []byte("defaults {\n\tpolling_interval 5\n\tno_path_retry 16\n}\n"))
	return root
}

type answers struct {
	sanlock, active, pvs, mpath, ntp string
}

func healthy(t *testing.T) answers {
	return answers{
		sanlock: fixture.Text(t, "sanlock-status.joined.txt"),
		active:  "active\nactive\nactive\n",
		pvs:     `{"report":[{"pv":[{"pv_name":"/dev/mapper/lun0","vg_name":"vol"}]}]}`,
		mpath:   fixture.Text(t, "multipathd-show-maps.json"),
		ntp:     "yes\n",
	}
}

func runDoctor(t *testing.T, root string, a answers) map[string]Check {
	t.Helper()
	exit := func(s string) int {
		if strings.Contains(s, "inactive") || strings.Contains(s, "failed") {
			return 3
		}
		return 0
	}
	r := run.NewScripted(t,
		run.Step{Argv: sanlock.StatusArgv(), Stdout: a.sanlock},
	)
	for i, unit := range []string{"sanlock", "lvmlockd", "wdmd"} {
		state := strings.Fields(a.active)[i]
		r.Expect(run.Step{Argv: []string{"systemctl", "is-active", unit}, Stdout: state + "\n", ExitCode: exit(state)})
	}
	r.Expect(
		run.Step{Argv: []string{"lvm", "version"}, Stdout: fixture.Text(t, "lvm-version.2.03.16.txt")},
		run.Step{Argv: []string{"pvs", "--reportformat", "json", "-o", "pv_name,vg_name"}, Stdout: a.pvs},
		run.Step{Argv: []string{"multipathd", "show", "maps", "json"}, Stdout: a.mpath},
		run.Step{Argv: []string{"timedatectl", "show", "-p", "NTPSynchronized", "--value"}, Stdout: a.ntp},
	)
	checks := Run(context.Background(), Env{Root: root, Runner: r, Timeout: time.Minute, VolumeGroups: []string{"vol"}, MultipathAlias: "lun0"})
	out := map[string]Check{}
	for _, c := range checks {
		out[c.Name] = c
	}
	return out
}

func TestHealthyHostPasses(t *testing.T) {
	checks := runDoctor(t, configuredRoot(t), healthy(t))
	var list []Check
	for _, c := range checks {
		if c.Status != Pass {
			t.Errorf("%s: %s %s", c.Name, c.Status, c.Detail)
		}
		list = append(list, c)
	}
	if len(checks) != 13 {
		t.Errorf("%d checks", len(checks))
	}
	if Failed(list) {
		t.Error("Failed on a healthy host")
	}
	{
		d := checks["io_timeouts"].Detail
		if !strings.Contains(d, "queues 1m20s") {
			t.Errorf("io_timeouts: d = %q, want it to contain \"queues 1m20s\"", d)
		}
		if !strings.Contains(d, "after 1m20s") {
			t.Errorf("io_timeouts: d = %q, want it to contain \"after 1m20s\"", d)
		}
	}
}

// Debian's packaging as shipped: sanlock -w 0, no kill command, wdmd not
// running. On real guests a second host took an LV that was still active
// on the failed one, so this must fail, not warn.
func TestDebianDefaultsFailFencing(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/lvm/lvm.conf", []byte(fixture.Text(t, "lvm.conf.debian")))
	write(t, root, "etc/lvm/lvmlocal.conf", []byte(fixture.Text(t, "lvmlocal.conf.debian")))
	write(t, root, "etc/iscsi/initiatorname.iscsi", []byte("GenerateName=yes\n"))
	a := healthy(t)
	a.sanlock = fixture.Text(t, "sanlock-status-D.debian-default.txt")
	a.active = "active\nactive\ninactive\n"
	checks := runDoctor(t, root, a)
	for name, want := range map[string]Status{
		"use_lvmlockd": Fail, "host_id": Fail, "fencing": Fail, "lvm_kill_command": Fail,
		"wdmd_running": Warn, "lockspace_vol": Fail, "iscsi_initiator": Fail, "io_timeouts": Warn,
		"sanlock_running": Pass, "lvmlockd_running": Pass,
	} {
		if got := checks[name]; got.Status != want {
			t.Errorf("%s: %s (%s), want %s", name, got.Status, got.Detail, want)
		}
		if checks[name].Status != Pass && checks[name].Fix == "" && name != "lvm_kill_command" {
			t.Errorf("%s has no fix hint", name)
		}
	}
	{
		d := checks["fencing"].Detail
		if !strings.Contains(d, "-w 0") {
			t.Errorf("fencing detail: d = %q, want it to contain \"-w 0\"", d)
		}
		if !strings.Contains(d, "lvmlockctl_kill_command empty") {
			t.Errorf("fencing detail: d = %q, want it to contain \"lvmlockctl_kill_command empty\"", d)
		}
	}
}

func TestWatchdogFencingWithoutKillCommand(t *testing.T) {
	root := configuredRoot(t)
	conf, _ := hostcfg.SetLVM([]byte(fixture.Text(t, "lvm.conf.debian")), hostcfg.Setting{Section: "global", Key: "use_lvmlockd", Value: "1"})
	write(t, root, "etc/lvm/lvm.conf", conf)
	write(t, root, "dev/watchdog", nil)
	a := healthy(t)
	a.sanlock = strings.Replace(fixture.Text(t, "sanlock-status-D.debian-default.txt"), "use_watchdog=0", "use_watchdog=1", 1)
	checks := runDoctor(t, root, a)
	{
		c := checks["fencing"]
		if c.Status != Pass {
			t.Errorf("fencing: c.Status = %v, want %v", c.Status, Pass)
		}
		if !strings.Contains(c.Detail, "watchdog") {
			t.Errorf("fencing: c.Detail = %q, want it to contain \"watchdog\"", c.Detail)
		}
	}
	if c := checks["lvm_kill_command"]; c.Status != Fail {
		t.Errorf("lvm_kill_command: %+v", c)
	}
}

func TestPathsDevicesClockAndQueueing(t *testing.T) {
	root := configuredRoot(t)
	write(t, root, "etc/multipath/conf.d/site.conf", []byte("defaults {\n\tno_path_retry queue\n}\n"))
	a := healthy(t)
	a.pvs = `{"report":[{"pv":[{"pv_name":"/dev/sda","vg_name":"vol"},{"pv_name":"/dev/vda2","vg_name":"os"}]}]}`
	a.mpath = fixture.Text(t, "multipathd-show-maps.one-path.json")
	a.ntp = "no\n"
	checks := runDoctor(t, root, a)
	for name, want := range map[string]Status{"lvm_devices": Fail, "multipath_paths": Warn, "clock_sync": Fail, "io_timeouts": Fail} {
		if got := checks[name]; got.Status != want {
			t.Errorf("%s: %s (%s), want %s", name, got.Status, got.Detail, want)
		}
	}
	{
		d := checks["lvm_devices"].Detail
		if !strings.Contains(d, "vol on /dev/sda") {
			t.Errorf("lvm_devices: d = %q, want it to contain \"vol on /dev/sda\"", d)
		}
		if strings.Contains(d, "vda2") {
			t.Errorf("lvm_devices: d = %q, want it not to contain \"vda2\"", d)
		}
	}
}

func TestQueueLongerThanLeaseFails(t *testing.T) {
	root := configuredRoot(t)
	write(t, root, "etc/multipath.conf", []byte("defaults {\n\tpolling_interval 5\n\tno_path_retry 17\n}\n"))
	if c := runDoctor(t, root, healthy(t))["io_timeouts"]; c.Status != Fail {
		t.Errorf("%+v", c)
	}
}

func TestOutputFormats(t *testing.T) {
	checks := []Check{{Name: "a", Status: Pass, Detail: "ok"}, {Name: "b", Status: Fail, Detail: "bad", Fix: "do x"}}
	var tbl, js bytes.Buffer
	if err := WriteTable(&tbl, checks); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "b      FAIL    bad     do x") {
		t.Errorf("table:\n%s", tbl.String())
	}
	if err := WriteJSON(&js, checks); err != nil {
		t.Fatal(err)
	}
	var back []Check
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("json %s: %v", js.String(), err)
	}
	if len(back) != 2 {
		t.Fatalf("json: %d checks, want 2: %s", len(back), js.String())
	}
	if back[1].Fix != "do x" {
		t.Errorf("json: back[1].Fix = %q, want \"do x\"", back[1].Fix)
	}
}
