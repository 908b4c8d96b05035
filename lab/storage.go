package lab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// The helpers below drive one host through any run.Runner: a lab guest, or
// whatever else answers these commands like a Debian host.

// LUNMap is the multipath map the image's multipath.conf makes of the LUN.
const LUNMap = "lun0"

// configureHost writes what differs between hosts and scenarios: the
// sanlock host_id, lvmlockd's io timeout and sanlock's watchdog use.
func configureHost(ctx context.Context, r run.Runner, hostID int, o Options) error {
	sanlockOpts := "-w 0"
	if o.Watchdog {
		sanlockOpts = "-w 1"
	}
	files := []struct{ path, content string }{
		{"/etc/lvm/lvmlocal.conf", fmt.Sprintf("local {\n\thost_id = %d\n}\n", hostID)},
		{"/etc/default/lvmlockd", fmt.Sprintf("LVMLOCKD_OPTS=\"-o %d\"\n", o.IOTimeout)},
		{"/etc/default/sanlock", fmt.Sprintf("sanlock_opts=%q\n", sanlockOpts)},
		{"/etc/default/wdmd", "enabled=1\n"},
		{"/etc/hostname", fmt.Sprintf("lab-h%d\n", hostID)},
	}
	for _, f := range files {
		if err := WriteFile(ctx, r, f.path, f.content); err != nil {
			return err
		}
	}
	_, err := r.Run(ctx, run.Cmd{Argv: []string{"hostname", fmt.Sprintf("lab-h%d", hostID)}})
	return err
}

// WriteFile replaces path on the host with content (argv only: tee reads stdin).
func WriteFile(ctx context.Context, r run.Runner, path, content string) error {
	_, err := r.Run(ctx, run.Cmd{Argv: []string{"tee", path}, Stdin: []byte(content)})
	return err
}

// StartStorage starts multipathd and waits for the LUN map, then (with
// watchdog) softdog and wdmd, then sanlock and lvmlockd.
func StartStorage(ctx context.Context, r run.Runner, watchdog bool) error {
	steps := [][]string{{"systemctl", "start", "multipathd.service"}}
	if watchdog {
		steps = append(steps, []string{"modprobe", "softdog", "soft_margin=60"}, []string{"systemctl", "start", "wdmd.service"})
	}
	for _, argv := range steps {
		if _, err := r.Run(ctx, run.Cmd{Argv: argv}); err != nil {
			return err
		}
	}
	if err := WaitMap(ctx, r, 2); err != nil {
		return err
	}
	for _, unit := range []string{"sanlock.service", "lvmlockd.service"} {
		if _, err := r.Run(ctx, run.Cmd{Argv: []string{"systemctl", "start", unit}}); err != nil {
			return err
		}
	}
	return nil
}

// WaitMap waits until the LUN map has paths active paths.
func WaitMap(ctx context.Context, r run.Runner, paths int) error {
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := ActivePaths(ctx, r)
		if err == nil && n == paths {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: map %s has %d active paths, want %d (last error: %v)", LUNMap, n, paths, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ActivePaths counts the LUN map's paths the kernel considers usable: in
// `dmsetup status` of a multipath target each path is "<maj:min> A|F <fails>".
func ActivePaths(ctx context.Context, r run.Runner) (int, error) {
	res, err := r.Run(ctx, run.Cmd{Argv: []string{"dmsetup", "status", LUNMap}})
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(res.Stdout))
	n := 0
	for i := 1; i < len(fields); i++ {
		if fields[i] == "A" && strings.Contains(fields[i-1], ":") {
			n++
		}
	}
	return n, nil
}

// PathDevices lists the sd devices under the LUN map, sorted.
func PathDevices(ctx context.Context, r run.Runner) ([]string, error) {
	res, err := r.Run(ctx, run.Cmd{Argv: []string{"dmsetup", "deps", "-o", "devname", LUNMap}})
	if err != nil {
		return nil, err
	}
	// "2 dependencies	: (sdb) (sda)"
	var devs []string
	for _, f := range strings.Fields(string(res.Stdout)) {
		if strings.HasPrefix(f, "(") && strings.HasSuffix(f, ")") {
			devs = append(devs, strings.Trim(f, "()"))
		}
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("lab: no paths under %s: %q", LUNMap, res.Stdout)
	}
	slices.Sort(devs)
	return devs, nil
}

// FailPaths sets the SCSI device of the first path (or of all paths)
// offline: I/O to it fails at once and multipathd marks it failed, as when a
// fabric link or the whole SAN goes away. multipathd does not reinstate it
// while it stays offline.
func FailPaths(ctx context.Context, r run.Runner, all bool) error {
	devs, err := PathDevices(ctx, r)
	if err != nil {
		return err
	}
	if !all {
		devs = devs[:1]
	}
	return setPathState(ctx, r, devs, "offline")
}

// RestorePaths sets every path's SCSI device running again; multipathd's
// checker reinstates them within a polling interval or two.
func RestorePaths(ctx context.Context, r run.Runner) error {
	devs, err := PathDevices(ctx, r)
	if err != nil {
		return err
	}
	return setPathState(ctx, r, devs, "running")
}

func setPathState(ctx context.Context, r run.Runner, devs []string, state string) error {
	for _, d := range devs {
		if err := WriteFile(ctx, r, "/sys/block/"+d+"/device/state", state+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// SuspendMap suspends the LUN map with --noflush: I/O to it (lvm's, the
// lease renewals') is held, not failed, until ResumeMap — a hung array or
// fabric rather than a dead one.
func SuspendMap(ctx context.Context, r run.Runner) error {
	_, err := r.Run(ctx, run.Cmd{Argv: []string{"dmsetup", "suspend", "--noflush", LUNMap}, Timeout: time.Minute})
	return err
}

// ResumeMap lets the held I/O go on.
func ResumeMap(ctx context.Context, r run.Runner) error {
	_, err := r.Run(ctx, run.Cmd{Argv: []string{"dmsetup", "resume", LUNMap}, Timeout: time.Minute})
	return err
}

// KillDaemon SIGKILLs every process of a systemd unit, as a crash would.
func KillDaemon(ctx context.Context, r run.Runner, unit string) error {
	_, err := r.Run(ctx, run.Cmd{Argv: []string{"systemctl", "kill", "--signal=SIGKILL", unit}})
	return err
}

// CreateSharedVG creates a sanlock-locked VG on the LUN map. vgcreate
// returns 0 even when its lockspace did not start, so the lockspace is
// checked afterwards.
func CreateSharedVG(ctx context.Context, r run.Runner, name string) error {
	if _, err := r.Run(ctx, run.Cmd{Argv: []string{"vgcreate", "--shared", "--lock-type", "sanlock", name, "/dev/mapper/" + LUNMap}, Timeout: 5 * time.Minute}); err != nil {
		return err
	}
	return checkLockspace(ctx, r, name)
}

// LockStart joins the VG's lockspace and checks that it did.
func LockStart(ctx context.Context, r run.Runner, vg string) error {
	if _, err := r.Run(ctx, run.Cmd{Argv: []string{"vgchange", "--lock-start", vg}, Timeout: 5 * time.Minute}); err != nil {
		return err
	}
	return checkLockspace(ctx, r, vg)
}

func checkLockspace(ctx context.Context, r run.Runner, vg string) error {
	res, err := r.Run(ctx, run.Cmd{Argv: []string{"sanlock", "client", "status"}})
	if err != nil {
		return err
	}
	if !strings.Contains(string(res.Stdout), "s lvm_"+vg+":") {
		return fmt.Errorf("lab: lockspace lvm_%s not joined:\n%s", vg, res.Stdout)
	}
	return nil
}
