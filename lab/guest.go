// Package lab boots qemu guests that run the real storage stack (lvm2,
// lvmlockd, sanlock, dm-multipath, systemd) on a shared LUN image, and
// exposes each guest as a run.Runner, so host-layer code drives real guests
// exactly as it drives the simulator. The image comes from
// lab/image/build.sh (scripts/lab.sh build-image).
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lab/guestctl"
)

// LUNWWN is the WWN both paths of the lab LUN report; the image's
// multipath.conf names the map lun0 by it.
const LUNWWN = "0x5000c50015ea71ac"

// GuestConfig describes one guest. Image is a directory with rootfs.raw,
// vmlinuz and initrd.img; ShareDir is mounted at /lab in the guest and must
// hold bin/aos-lab (the guest daemon).
type GuestConfig struct {
	Name     string
	Image    string
	WorkDir  string // overlay, control socket, serial log, pid file
	ShareDir string
	LUN      string // raw image presented on two virtio-scsi paths
	Accel    string // "kvm" or "tcg"
	SMP      int
	MemoryMB int
	// LUNLate boots without the LUN; AttachLUN plugs its two paths in later,
	// as a SAN LUN that appears after the host booted.
	LUNLate bool
	// ReuseOverlay boots from the overlay a previous guest of WorkDir left
	// (a reboot: what was installed stays); otherwise it starts fresh.
	ReuseOverlay bool
	// BrokerPort, if set, gives the guest one network path: 10.0.2.100:5672
	// in the guest reaches 127.0.0.1:BrokerPort on this host, and nothing
	// else is reachable (user-mode network with restrict=on).
	BrokerPort int
}

// GuestBrokerAddr is where a guest reaches the host's broker (BrokerPort).
const GuestBrokerAddr = "10.0.2.100:5672"

// Guest is a running qemu guest. Run executes argv in the guest through its
// guest daemon.
type Guest struct {
	Name      string
	SerialLog string

	client *guestctl.Client
	cfg    GuestConfig
	proc   *os.Process
	exited chan struct{}
	err    error // qemu's exit, valid once exited is closed
}

// StartGuest boots a guest and connects to its control socket. It does not
// wait for the guest daemon; see WaitReady.
func StartGuest(ctx context.Context, cfg GuestConfig) (*Guest, error) {
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	overlay := filepath.Join(cfg.WorkDir, "overlay.qcow2")
	if !cfg.ReuseOverlay {
		host := &run.Local{}
		if _, err := host.Run(ctx, run.Cmd{Argv: []string{"qemu-img", "create", "-q", "-f", "qcow2",
			"-F", "raw", "-b", filepath.Join(cfg.Image, "rootfs.raw"), overlay}}); err != nil {
			return nil, fmt.Errorf("lab: overlay for %s: %w", cfg.Name, err)
		}
	}
	sock := filepath.Join(cfg.WorkDir, "ctl.sock")
	for _, old := range []string{sock, filepath.Join(cfg.WorkDir, "qmp.sock")} {
		_ = os.Remove(old) // a previous boot's sockets
	}
	g := &Guest{Name: cfg.Name, SerialLog: filepath.Join(cfg.WorkDir, "serial.log"), exited: make(chan struct{}), cfg: cfg}
	qemuLog, err := os.Create(filepath.Join(cfg.WorkDir, "qemu.log"))
	if err != nil {
		return nil, err
	}
	defer qemuLog.Close()
	cmd := exec.Command("qemu-system-x86_64", qemuArgs(cfg, overlay, sock, g.SerialLog)...)
	cmd.Stdout, cmd.Stderr = qemuLog, qemuLog
	// qemu dies with the test process even when no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start qemu for %s: %w", cfg.Name, err)
	}
	g.proc = cmd.Process
	_ = os.WriteFile(filepath.Join(cfg.WorkDir, "qemu.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	go func() {
		g.err = cmd.Wait()
		close(g.exited)
	}()
	conn, err := g.dial(ctx, sock)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.client = guestctl.NewClient(conn)
	return g, nil
}

func qemuArgs(cfg GuestConfig, overlay, sock, serial string) []string {
	cpu := "max"
	if cfg.Accel == "kvm" {
		cpu = "host"
	}
	args := []string{
		"-name", cfg.Name, "-accel", cfg.Accel, "-cpu", cpu,
		"-smp", strconv.Itoa(cfg.SMP), "-m", strconv.Itoa(cfg.MemoryMB),
		"-display", "none", "-nodefaults", "-no-reboot",
		"-serial", "file:" + serial,
		"-kernel", filepath.Join(cfg.Image, "vmlinuz"),
		"-initrd", filepath.Join(cfg.Image, "initrd.img"),
		"-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0",
		"-drive", "file=" + overlay + ",format=qcow2,if=virtio,cache=unsafe",
		"-fsdev", "local,id=fs0,path=" + cfg.ShareDir + ",security_model=none",
		"-device", "virtio-9p-pci,fsdev=fs0,mount_tag=lab",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=ctl,path=" + sock + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=ctl,name=aos-lab",
		"-qmp", "unix:" + filepath.Join(cfg.WorkDir, "qmp.sock") + ",server=on,wait=off",
	}
	if cfg.BrokerPort > 0 {
		args = append(args,
			// cmd: spawns one socat per guest connection; a tcp: chardev
			// would be a single connection opened when qemu starts.
			"-netdev", fmt.Sprintf("user,id=n0,restrict=on,guestfwd=tcp:%s-cmd:socat STDIO TCP:127.0.0.1:%d", GuestBrokerAddr, cfg.BrokerPort),
			"-device", "virtio-net-pci,netdev=n0")
	}
	// Two controllers, one disk each, same image, serial and WWN: two paths
	// to one LUN, as a host sees a SAN LUN through two HBAs.
	for i := range 2 {
		args = append(args, "-device", fmt.Sprintf("virtio-scsi-pci,id=scsi%d", i))
		if !cfg.LUNLate {
			args = append(args,
				"-drive", fmt.Sprintf("if=none,id=lunp%d,file=%s,format=raw,cache=none,aio=threads,file.locking=off", i, cfg.LUN),
				"-device", fmt.Sprintf("scsi-hd,drive=lunp%d,bus=scsi%d.0,serial=LABLUN0001,wwn=%s,share-rw=on", i, i, LUNWWN))
		}
	}
	return args
}

// AttachLUN hot-plugs both paths of the LUN into a guest booted with
// LUNLate, with the same properties the command line gives them.
func (g *Guest) AttachLUN(ctx context.Context) error {
	wwn, err := strconv.ParseUint(strings.TrimPrefix(LUNWWN, "0x"), 16, 64)
	if err != nil {
		return err
	}
	q, err := DialQMP(ctx, filepath.Join(g.cfg.WorkDir, "qmp.sock"))
	if err != nil {
		return err
	}
	defer q.Close()
	for i := range 2 {
		node := fmt.Sprintf("lunp%d", i)
		if err := q.Execute(ctx, "blockdev-add", map[string]any{
			"driver": "raw", "node-name": node, "cache": map[string]any{"direct": true},
			"file": map[string]any{"driver": "file", "filename": g.cfg.LUN, "aio": "threads", "locking": "off"},
		}, nil); err != nil {
			return err
		}
		if err := q.Execute(ctx, "device_add", map[string]any{
			"driver": "scsi-hd", "id": fmt.Sprintf("lun%d", i), "drive": node, "bus": fmt.Sprintf("scsi%d.0", i),
			"serial": "LABLUN0001", "wwn": wwn, "share-rw": true,
		}, nil); err != nil {
			return err
		}
	}
	return nil
}

// dial connects to qemu's chardev socket, which appears shortly after start.
func (g *Guest) dial(ctx context.Context, sock string) (net.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			return conn, nil
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("lab: qemu for %s exited: %v (see qemu.log)", g.Name, g.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lab: %s: control socket: %w", g.Name, err)
		}
	}
}

// Run runs c in the guest.
func (g *Guest) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	return g.client.Run(ctx, c)
}

// Exited is closed when qemu has exited (shutdown, watchdog reset, crash).
func (g *Guest) Exited() <-chan struct{} { return g.exited }

// WaitReady waits until the guest daemon answers a command.
func (g *Guest) WaitReady(ctx context.Context) error {
	for {
		// Early pings wait in the socket until the daemon opens the port;
		// their late answers are simply dropped.
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := g.Run(pctx, run.Cmd{Argv: []string{"true"}, Timeout: 2 * time.Second})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-g.exited:
			return fmt.Errorf("lab: %s exited while booting: %v (see %s)", g.Name, g.err, g.SerialLog)
		case <-ctx.Done():
			return fmt.Errorf("lab: %s: guest daemon not answering: %w (see %s)", g.Name, ctx.Err(), g.SerialLog)
		default:
		}
		if errors.Is(err, guestctl.ErrClosed) {
			return fmt.Errorf("lab: %s: control channel closed: %w", g.Name, err)
		}
	}
}

// Close kills qemu by pid and waits for it. Safe to call more than once.
func (g *Guest) Close() error {
	if g.client != nil {
		g.client.Close()
	}
	_ = g.proc.Signal(syscall.SIGKILL)
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("lab: qemu pid %d for %s did not exit after SIGKILL", g.proc.Pid, g.Name)
	}
	return nil
}

// ProbeAccel returns "kvm" if a guest kernel makes progress under KVM within
// a few seconds, "tcg" otherwise. Some hosts offer /dev/kvm whose KVM cannot
// boot a stock kernel (a kvm-pvm host hangs right after the BIOS).
func ProbeAccel(ctx context.Context, image, workDir string) string {
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		return "tcg"
	} else {
		f.Close()
	}
	serial := filepath.Join(workDir, "kvm-probe.serial")
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256",
		"-display", "none", "-nodefaults", "-no-reboot", "-serial", "file:"+serial,
		"-kernel", filepath.Join(image, "vmlinuz"), "-append", "console=ttyS0 panic=-1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "tcg"
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	timeout := time.After(15 * time.Second)
	for {
		// Past early boot: the kernel got as far as looking for its root.
		if b, _ := os.ReadFile(serial); strings.Contains(string(b), "VFS:") || strings.Contains(string(b), "Freeing unused kernel") {
			return "kvm"
		}
		select {
		case <-exited: // e.g. qemu aborting on an MSR the host KVM refuses
			return "tcg"
		case <-timeout:
			return "tcg"
		case <-time.After(250 * time.Millisecond):
		}
	}
}
