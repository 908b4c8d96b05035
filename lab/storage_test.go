package lab

import (
	"context"
	"errors"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"slices"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/internal/run"
)

func TestActivePathsFromRecordedStatus(t *testing.T) {
	for file, want := range map[string]int{
		"dmsetup-status-lun0.healthy":          2,
		"dmsetup-status-lun0.one-path-offline": 1,
	} {
		r := run.NewScripted(t, run.Step{Argv: []string{"dmsetup", "status", "lun0"}, Stdout: fixture.Text(t, file)})
		got, err := ActivePaths(context.Background(), r)
		if err != nil {
			t.Fatalf("%s: err = %v, want nil", file, err)
		}
		if got != want {
			t.Errorf("%s: got = %v, want %v", file, got, want)
		}
	}
}

func TestFailOnePathOfflinesTheFirstDevice(t *testing.T) {
	deps := run.Step{Argv: []string{"dmsetup", "deps", "-o", "devname", "lun0"}, Stdout: fixture.Text(t, "dmsetup-deps-lun0")}
	r := run.NewScripted(t, deps,
		run.Step{Argv: []string{"tee", "/sys/block/sda/device/state"}})
	if err := FailPaths(context.Background(), r, false); err != nil {
		t.Fatal(err)
	}
	r = run.NewScripted(t, deps,
		run.Step{Argv: []string{"tee", "/sys/block/sda/device/state"}},
		run.Step{Argv: []string{"tee", "/sys/block/sdb/device/state"}})
	if err := RestorePaths(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// stdinRecorder checks what a command was given on stdin (Scripted does not).
type stdinRecorder struct{ got map[string]string }

func (s *stdinRecorder) Run(_ context.Context, c run.Cmd) (run.Result, error) {
	if c.Argv[0] == "tee" {
		s.got[c.Argv[1]] = string(c.Stdin)
	}
	return run.Result{}, nil
}

func TestConfigureHostWritesHostIDAndTimeouts(t *testing.T) {
	r := &stdinRecorder{got: map[string]string{}}
	if err := configureHost(context.Background(), r, 2, Options{IOTimeout: 3}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/etc/lvm/lvmlocal.conf": "host_id = 2",
		"/etc/default/lvmlockd":  `LVMLOCKD_OPTS="-o 3"`,
		"/etc/default/sanlock":   `sanlock_opts="-w 0"`,
	} {
		if !strings.Contains(r.got[path], want) {
			t.Errorf("%s = %q, want it to contain %q", path, r.got[path], want)
		}
	}
	if err := configureHost(context.Background(), r, 1, Options{IOTimeout: 2, Watchdog: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.got["/etc/default/sanlock"], "-w 1") {
		t.Errorf("watchdog: sanlock opts %q", r.got["/etc/default/sanlock"])
	}
}

// vgcreate --shared exits 0 even when its lockspace did not start (seen with
// sanlock -w 1 and no wdmd), so CreateSharedVG must look for the lockspace.
func TestCreateSharedVGChecksTheLockspace(t *testing.T) {
	vgcreate := run.Step{Argv: []string{"vgcreate", "--shared", "--lock-type", "sanlock", "vol", "/dev/mapper/lun0"}}
	r := run.NewScripted(t, vgcreate, run.Step{Argv: []string{"sanlock", "client", "status"}, Stdout: fixture.Text(t, "sanlock-client-status.vgcreate-lockspace-not-started")})
	if err := CreateSharedVG(context.Background(), r, "vol"); err == nil {
		t.Fatal("want an error when lvm_vol is not in sanlock client status")
	}
	r = run.NewScripted(t, vgcreate, run.Step{Argv: []string{"sanlock", "client", "status"},
		Stdout: fixture.Text(t, "sanlock-client-status.after-vgcreate")})
	if err := CreateSharedVG(context.Background(), r, "vol"); err != nil {
		t.Fatal(err)
	}
	r = run.NewScripted(t, run.Step{Argv: vgcreate.Argv, ExitCode: 5})
	var rerr *run.Error
	{
		err := CreateSharedVG(context.Background(), r, "vol")
		if !errors.As(err, &rerr) {
			t.Fatal("got: errors.As(err, &rerr) = false, want true")
		}
		if rerr.ExitCode != 5 {
			t.Fatalf("got: rerr.ExitCode = %v, want 5", rerr.ExitCode)
		}
	}
}

func TestQemuArgsPresentTheLUNOnTwoPathsWithOneWWN(t *testing.T) {
	args := qemuArgs(GuestConfig{Name: "lab-h1", Image: "/img", ShareDir: "/share", LUN: "/w/lun0.raw", Accel: "tcg", SMP: 1, MemoryMB: 1024},
		"/w/h1/overlay.qcow2", "/w/h1/ctl.sock", "/w/h1/serial.log")
	joined := strings.Join(args, " ")
	if n := strings.Count(joined, "file=/w/lun0.raw,format=raw,cache=none,aio=threads,file.locking=off"); n != 2 {
		t.Errorf("LUN drives: %d, want 2", n)
	}
	if n := strings.Count(joined, "wwn="+LUNWWN+",share-rw=on"); n != 2 {
		t.Errorf("disks with the LUN WWN: %d, want 2", n)
	}
	if !slices.Contains(args, "virtserialport,bus=vser0.0,chardev=ctl,name=aos-lab") {
		t.Error("no aos-lab virtio-serial port")
	}
	{
		i := slices.Index(args, "-cpu")
		if i < 0 {
			t.Errorf("-cpu for tcg: i = %v, want >= 0", i)
		}
		if args[i+1] != "max" {
			t.Errorf("-cpu for tcg: args[i+1] = %q, want \"max\"", args[i+1])
		}
	}
}
