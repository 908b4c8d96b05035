package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// Options configure a Cluster. Zero values take the defaults noted.
type Options struct {
	Image string // built image directory (required)
	// GuestDaemon is the aos-lab binary whose lab-guest command is the
	// guests' control daemon, run from the 9p share; built with
	// CGO_ENABLED=0 (required).
	GuestDaemon string
	// Package is the aos-agent .deb every guest installs at boot with
	// apt-get, as an operator does (required): the agent the lab runs,
	// units, kill hook and recovery included, is the packaged one.
	Package string
	WorkDir string // required; holds the LUN, the 9p share and one directory per guest
	Hosts   int    // default 2
	LUNSize int64  // bytes; default 2 GiB
	// IOTimeout is lvmlockd's -o, the sanlock io_timeout of the lockspaces
	// it creates: leases renew every 2×, and fail 8× after the storage goes.
	// Keep it ≥ 2 under TCG. Default 3.
	IOTimeout int
	// Watchdog runs wdmd over softdog and sanlock -w 1, so a host that
	// loses its leases is reset. Off means Debian's default sanlock -w 0.
	Watchdog bool
	Accel    string // "kvm" or "tcg"; default: ProbeAccel
	// BrokerPort gives every guest a path to 127.0.0.1:BrokerPort on this
	// host at GuestBrokerAddr, and nothing else (see GuestConfig).
	BrokerPort  int
	MemoryMB    int           // per guest; default 1024
	BootTimeout time.Duration // default 4 minutes
}

// Cluster is N guests sharing one LUN. Hosts are numbered from 1, and a
// host's number is also its sanlock host_id.
type Cluster struct {
	opts   Options
	share  string // mounted at /lab in every guest
	guests []*Guest
	cfgs   []GuestConfig // as each guest was last booted
	Accel  string
}

// IOTimeout is the hosts' sanlock io_timeout (lvmlockd -o).
func (c *Cluster) IOTimeout() time.Duration { return time.Duration(c.opts.IOTimeout) * time.Second }

// NewCluster boots every guest at once, waits for their guest daemons,
// installs the agent's package and writes each host's lock configuration. Daemons are not started: see
// StartStorage. On error everything started is torn down.
func NewCluster(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Image == "" || opts.GuestDaemon == "" || opts.Package == "" || opts.WorkDir == "" {
		return nil, errors.New("lab: Options.Image, GuestDaemon, Package and WorkDir are required")
	}
	setDefaults(&opts)
	share := filepath.Join(opts.WorkDir, "share")
	c := &Cluster{opts: opts, share: share}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, dir := range []string{"bin", "deb"} {
		if err := os.MkdirAll(filepath.Join(share, dir), 0o755); err != nil {
			return nil, err
		}
	}
	if err := copyFile(opts.GuestDaemon, filepath.Join(share, "bin", "aos-lab"), 0o755); err != nil {
		return nil, err
	}
	if err := c.sharePackage(opts.Package); err != nil {
		return nil, err
	}
	lun := filepath.Join(opts.WorkDir, "lun0.raw")
	if err := os.WriteFile(lun, nil, 0o644); err != nil {
		return nil, err
	}
	if err := os.Truncate(lun, opts.LUNSize); err != nil {
		return nil, err
	}
	c.Accel = opts.Accel
	if c.Accel == "" {
		c.Accel = ProbeAccel(ctx, opts.Image, opts.WorkDir)
	}
	// TCG needs a host core per vCPU: one guest may use both, two get one each.
	smp := 1
	if opts.Hosts == 1 {
		smp = 2
	}
	for i := 1; i <= opts.Hosts; i++ {
		cfg := GuestConfig{
			Name:       fmt.Sprintf("lab-h%d", i),
			Image:      opts.Image,
			WorkDir:    filepath.Join(opts.WorkDir, fmt.Sprintf("h%d", i)),
			ShareDir:   share,
			LUN:        lun,
			Accel:      c.Accel,
			SMP:        smp,
			MemoryMB:   opts.MemoryMB,
			BrokerPort: opts.BrokerPort,
		}
		g, err := StartGuest(ctx, cfg)
		if err != nil {
			return nil, err
		}
		c.guests, c.cfgs = append(c.guests, g), append(c.cfgs, cfg)
	}
	bootCtx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	if err := c.each(bootCtx, func(ctx context.Context, host int, g *Guest) error {
		if err := g.WaitReady(ctx); err != nil {
			return err
		}
		if _, err := installPackage(ctx, g, opts.Package); err != nil {
			return err
		}
		return configureHost(ctx, g, host, opts)
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func setDefaults(o *Options) {
	if o.Hosts == 0 {
		o.Hosts = 2
	}
	if o.LUNSize == 0 {
		o.LUNSize = 2 << 30
	}
	if o.IOTimeout == 0 {
		o.IOTimeout = 3
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 4 * time.Minute
	}
}

// Reboot powers host n off cleanly (what was installed stays on its
// overlay) and boots it again, without its LUN when lunLate (AttachLUN adds
// it). It returns once the guest daemon answers; the host's own units start
// as they would at any boot.
func (c *Cluster) Reboot(ctx context.Context, n int, lunLate bool) error {
	g := c.guests[n-1]
	// poweroff returns before the guest is down; its exit is what counts.
	_, _ = g.Run(ctx, run.Cmd{Argv: []string{"systemctl", "poweroff"}, Timeout: 10 * time.Second})
	select {
	case <-g.Exited():
	case <-time.After(3 * time.Minute):
		return fmt.Errorf("lab: host %d did not power off", n)
	}
	g.Close()
	cfg := c.cfgs[n-1]
	cfg.ReuseOverlay, cfg.LUNLate = true, lunLate
	ng, err := StartGuest(ctx, cfg)
	if err != nil {
		return err
	}
	c.guests[n-1], c.cfgs[n-1] = ng, cfg
	bootCtx, cancel := context.WithTimeout(ctx, c.opts.BootTimeout)
	defer cancel()
	return ng.WaitReady(bootCtx)
}

// InstallPackage installs a .deb on host n the way an operator does, with
// apt-get install of the file (an upgrade when an older version is
// installed), and returns apt-get's output.
func (c *Cluster) InstallPackage(ctx context.Context, n int, deb string) (run.Result, error) {
	if err := c.sharePackage(deb); err != nil {
		return run.Result{}, err
	}
	return installPackage(ctx, c.guests[n-1], deb)
}

// sharePackage puts a .deb where guests see it: /lab/deb.
func (c *Cluster) sharePackage(deb string) error {
	return copyFile(deb, filepath.Join(c.share, "deb", filepath.Base(deb)), 0o644)
}

// installPackage runs apt-get on a .deb the share holds. Its dependencies
// are in the image: the guests have no network to fetch them.
func installPackage(ctx context.Context, g *Guest, deb string) (run.Result, error) {
	return g.Run(ctx, run.Cmd{Argv: []string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
		"--no-install-recommends", "/lab/deb/" + filepath.Base(deb)}, Timeout: 5 * time.Minute})
}

// Host returns host n (1-based) as a runner.
func (c *Cluster) Host(n int) *Guest { return c.guests[n-1] }

// Runners returns the hosts in order, for code that only needs run.Runner
// (shared scenarios that also target the simulator).
func (c *Cluster) Runners() []run.Runner {
	rs := make([]run.Runner, len(c.guests))
	for i, g := range c.guests {
		rs[i] = g
	}
	return rs
}

// Hosts returns how many hosts the cluster has.
func (c *Cluster) Hosts() int { return len(c.guests) }

// each runs f on every host concurrently and joins the errors.
func (c *Cluster) each(ctx context.Context, f func(ctx context.Context, host int, g *Guest) error) error {
	errs := make([]error, len(c.guests))
	var wg sync.WaitGroup
	for i, g := range c.guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, i+1, g); err != nil {
				errs[i] = fmt.Errorf("host %d: %w", i+1, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close tears every guest down by pid. It is safe to call more than once.
func (c *Cluster) Close() error {
	var errs []error
	for _, g := range c.guests {
		errs = append(errs, g.Close())
	}
	return errors.Join(errs...)
}

// CollectLogs writes each host's serial console to dir/h<N>.serial and, for
// hosts still running, its journal to dir/h<N>.journal.
func (c *Cluster) CollectLogs(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return c.each(ctx, func(ctx context.Context, host int, g *Guest) error {
		if serial, err := os.ReadFile(g.SerialLog); err == nil {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("h%d.serial", host)), serial, 0o644)
		}
		select {
		case <-g.Exited():
			return nil
		default:
		}
		res, err := g.Run(ctx, run.Cmd{Argv: []string{"journalctl", "-b", "-o", "short-monotonic", "--no-pager"}, Timeout: time.Minute})
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, fmt.Sprintf("h%d.journal", host)), res.Stdout, 0o644)
	})
}

// StartStorage starts the storage stack on every host, as a host boots it:
// multipathd (until map lun0 exists), wdmd when the watchdog is on,
// sanlock, lvmlockd.
func (c *Cluster) StartStorage(ctx context.Context) error {
	return c.each(ctx, func(ctx context.Context, _ int, g *Guest) error {
		return StartStorage(ctx, g, c.opts.Watchdog)
	})
}

// CreateSharedVG creates VG name with lock type sanlock on the LUN from host
// 1, then starts its lockspace on the other hosts.
func (c *Cluster) CreateSharedVG(ctx context.Context, name string) error {
	if err := CreateSharedVG(ctx, c.Host(1), name); err != nil {
		return fmt.Errorf("host 1: %w", err)
	}
	return c.each(ctx, func(ctx context.Context, host int, g *Guest) error {
		if host == 1 {
			return nil
		}
		return LockStart(ctx, g, name)
	})
}

// FailPaths takes one path (all=false) or every path of host's LUN offline.
func (c *Cluster) FailPaths(ctx context.Context, host int, all bool) error {
	return FailPaths(ctx, c.Host(host), all)
}

// RestorePaths brings every path of host's LUN back.
func (c *Cluster) RestorePaths(ctx context.Context, host int) error {
	return RestorePaths(ctx, c.Host(host))
}

// KillDaemon SIGKILLs a systemd service's processes on host.
func (c *Cluster) KillDaemon(ctx context.Context, host int, unit string) error {
	return KillDaemon(ctx, c.Host(host), unit)
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
