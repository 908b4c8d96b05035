// Package sim is a simulated cluster of hosts sharing one sanlock-locked LVM
// VG on a multipathed LUN. Each Host is a run.Runner that answers the argv of
// lvm2 2.03.16, lvmlockctl, sanlock 3.8.5, multipath-tools 0.9.4, dmsetup,
// systemctl and virsh with their recorded output formats, stderr and exit
// codes, so production parsers and error mapping run unchanged on it.
package sim

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// HostSpec names one simulated host.
type HostSpec struct {
	Name   string
	HostID int
	// NoWatchdog models sanlock -w 0: a host whose lease expired is never
	// reset, so it keeps its LVs active (the split brain the agent must prevent).
	NoWatchdog bool
	// NoPathRetryFail models multipath.conf's no_path_retry fail (the lab
	// guests'): I/O on the map without paths fails at once instead of
	// queueing, and restorequeueing brings back that, not queueing.
	NoPathRetryFail bool
	// IOTimeout is the io_timeout this host's sanlock reports, when it is
	// configured unlike the others (0: the cluster's). Only the report
	// differs: leases still expire on the cluster's timing.
	IOTimeout time.Duration
}

// Options configures a Cluster. Zero values get the defaults noted.
type Options struct {
	Hosts      []HostSpec
	VG         string        // "vol"
	PVSize     int64         // bytes; 2 GiB
	ExtentSize int64         // bytes; 4 MiB
	IOTimeout  time.Duration // sanlock io_timeout; 10 s
	// JoinTime is how long a lockspace join (vgchange --lock-start) takes.
	// Default 2 × IOTimeout; 0 after defaults only if set negative.
	JoinTime time.Duration
	Clock    Clock // ManualClock at a fixed date
	// RunKill runs a host's configured lvmlockctl_kill_command (argv with the
	// VG appended) and returns its exit code. Nil means exit 1.
	RunKill func(host string, argv []string) int
	// DataDir, when set, backs every LV with a sparse file there on a loop
	// device (root only), linked at DevDir/VG/LV while any host has it
	// active, and dd really copies (devices.go). Call Close when done.
	DataDir string
	DevDir  string // "/dev"
}

const (
	pvStartSectors = 2048      // 1 MiB PE start
	lvmlockSize    = 256 << 20 // hidden [lvmlock] LV
	lockArgsBase   = 67 << 20  // first LV lease offset on lvmlock (recorded)
	leaseAlign     = 1 << 20   // one lease per MiB
	lunSerial      = "35000c50015ea71ac"
	pidLvmlockd    = 443
	renewFactor    = 8 // renewal fails at 8 × io_timeout
	// killGrace is sanlock's kill_grace_seconds: the watchdog fires this
	// long after renewal failed unless the leases were released.
	killGrace = 40 * time.Second
	// watchdogFire is sanlock's fixed watchdog timeout: other hosts consider
	// a host dead this long after its renewal failed.
	watchdogFire = 60 * time.Second
	sectorSize   = 512
)

// Lock modes as lvmlockctl prints them.
const (
	modeEx = "ex"
	modeSh = "sh"
)

// Cluster is the shared state: the VG on the LUN, the lease area and the hosts.
type Cluster struct {
	mu      sync.Mutex
	opt     Options
	clock   Clock
	start   time.Time
	vgUUID  string
	lvs     map[string]*lv // by name
	lvOrder []string
	hosts   map[string]*Host
	order   []string
	uuidSeq int
	domSeq  int
	// vgVersion is the VG lock's version (bumped by metadata changes).
	vgVersion int
	dev       *devices // nil without Options.DataDir
}

type lv struct {
	name, uuid string
	extents    int64
	segStart   int64 // first extent
	lockOffset int64
	holders    map[string]string // host name → ex|sh
	lver       int               // sanlock lease version, bumped per ex acquire
	origin     string            // a COW snapshot's origin; it has no lock of its own
	tag        string            // lvcreate --addtag (one is enough here)
	// orphans are leases a host let go of while its lease storage was
	// unreachable: the release never reached the disk, so they bar other
	// hosts until the host's delta lease expires.
	orphans map[string]orphan
	dev     *lvDev // with Options.DataDir
}

type orphan struct {
	mode  string
	until time.Time
}

// Host is one simulated machine; it implements run.Runner.
type Host struct {
	c    *Cluster
	spec HostSpec

	daemons    map[string]bool // unit → running
	crashed    map[string]bool
	ls         *lockspace       // nil when the VG lockspace is not joined
	everLocked map[string]bool  // LV uuids lvmlockd has a resource for
	active     map[string]*dmLV // LV name → device
	pathsOK    [2]bool
	queueing   bool
	leaseFail  bool
	stallUntil time.Time // lvm I/O to the LUN blocks until then (suspended map)
	killArgv   []string
	hangs      []string
	skew       time.Duration
	domains    map[string]*domain
	domOrder   []string
	resets     int
	kills      int
}

type lockspace struct {
	readyAt     time.Time
	failedAt    time.Time // last good renewal before the fault; zero when healthy
	renewFailed bool
	killVG      bool
	expired     bool
	// dropped: sanlock removed the lockspace when its renewal failed with
	// no resource held (no killpath, nothing to wait for); lvmlockd, never
	// told, keeps its own until lvmlockctl --drop.
	dropped   bool
	stops     []func() bool
	vgVersion int
}

type dmLV struct {
	sectors int64
	offset  int64
	errTbl  bool
	open    int
}

type domain struct {
	name   string
	disks  []string // LV names
	state  string   // running, paused, shut off
	reason string   // as virsh domstate --reason prints it
	id     int
	// errorPolicy is the disks' error_policy: only "stop" pauses the
	// guest on EIO.
	errorPolicy string
}

// NewCluster builds a cluster with a created shared VG and every host's
// daemons running, no lockspace started.
func NewCluster(o Options) *Cluster {
	if o.VG == "" {
		o.VG = "vol"
	}
	if o.PVSize == 0 {
		o.PVSize = 2 << 30
	}
	if o.ExtentSize == 0 {
		o.ExtentSize = 4 << 20
	}
	if o.IOTimeout == 0 {
		o.IOTimeout = 10 * time.Second
	}
	if o.JoinTime == 0 {
		o.JoinTime = 2 * o.IOTimeout
	} else if o.JoinTime < 0 {
		o.JoinTime = 0
	}
	if o.Clock == nil {
		o.Clock = NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	}
	c := &Cluster{opt: o, clock: o.Clock, start: o.Clock.Now(), lvs: map[string]*lv{}, hosts: map[string]*Host{}}
	if o.DataDir != "" {
		if o.DevDir == "" {
			c.opt.DevDir = "/dev"
		}
		c.dev = &devices{dataDir: o.DataDir, devDir: c.opt.DevDir}
	}
	c.vgUUID = c.newUUID()
	for _, s := range o.Hosts {
		h := &Host{c: c, spec: s, pathsOK: [2]bool{true, true}}
		h.boot()
		c.hosts[s.Name] = h
		c.order = append(c.order, s.Name)
	}
	return c
}

// boot is a fresh start of the host: daemons up, nothing locked or active.
func (h *Host) boot() {
	h.daemons = map[string]bool{"sanlock": true, "lvmlockd": true, "multipathd": true, "wdmd": true, "libvirtd": true}
	h.crashed = map[string]bool{}
	h.ls = nil
	h.everLocked = map[string]bool{}
	h.active = map[string]*dmLV{}
	h.queueing = !h.spec.NoPathRetryFail
	if h.domains == nil {
		h.domains = map[string]*domain{}
	}
	for _, d := range h.domains {
		d.state, d.reason, d.id = "shut off", "unknown", 0
	}
}

// newUUID makes a deterministic LVM-style uuid (6-4-4-4-4-4-6).
func (c *Cluster) newUUID() string {
	c.uuidSeq++
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	x := uint64(c.uuidSeq)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = alphabet[x%uint64(len(alphabet))]
	}
	s := string(b)
	return strings.Join([]string{s[0:6], s[6:10], s[10:14], s[14:18], s[18:22], s[22:26], s[26:32]}, "-")
}

// Host returns the named host, or nil.
func (c *Cluster) Host(name string) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[name]
}

// HostID is the host_id the named host's lvmlocal.conf would carry.
func (h *Host) HostID() int { return h.spec.HostID }

// Clock returns the cluster's clock.
func (c *Cluster) Clock() Clock { return c.clock }

// Name is the host's name.
func (h *Host) Name() string { return h.spec.Name }

func (c *Cluster) mustHost(name string) *Host {
	h := c.hosts[name]
	if h == nil {
		panic(fmt.Sprintf("sim: no host %q", name))
	}
	return h
}

// monotime is sanlock's seconds-since-start view of the host's clock.
func (h *Host) monotime() int64 {
	return int64(h.c.clock.Now().Add(h.skew).Sub(h.c.start) / time.Second)
}

// lockUsable reports whether the host's lease on the lockspace still counts:
// after expiry other hosts may take its locks even if it still thinks it holds them.
func (h *Host) lockUsable() bool { return h.ls != nil && !h.ls.expired }

// --- fault injection -------------------------------------------------------

// FailPaths fails one path of the host's multipath map, or all of them. With
// all paths gone the lease area is unreachable too.
func (c *Cluster) FailPaths(host string, all bool) {
	c.mu.Lock()
	h := c.mustHost(host)
	h.pathsOK[1] = false
	if all {
		h.pathsOK[0] = false
		h.pauseDomainsOnEIO()
	}
	c.mu.Unlock()
	if all {
		c.FailLeaseStorage(host)
	}
}

// RestorePaths brings every path back. A lockspace whose renewal already
// failed stays dead until dropped and restarted, as on real hosts.
func (c *Cluster) RestorePaths(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.mustHost(host)
	h.pathsOK = [2]bool{true, true}
	h.leaseStorageBack()
}

// leaseStorageBack ends a lease storage fault: renewals succeed again unless
// one already failed (that lockspace stays dead until dropped).
func (h *Host) leaseStorageBack() {
	h.leaseFail = false
	if h.ls != nil && !h.ls.renewFailed {
		h.ls.cancelTimeline()
		h.ls.failedAt = time.Time{}
	}
}

// StallIO suspends I/O on the host's multipath map for d (dmsetup suspend
// --noflush, then resume): lvm commands and lease renewals block meanwhile.
// A stall shorter than 8 × io_timeout leaves the lockspace joined; a longer
// one fails the lease like lost storage.
func (c *Cluster) StallIO(host string, d time.Duration) {
	c.mu.Lock()
	h := c.mustHost(host)
	h.stallUntil = c.clock.Now().Add(d)
	c.mu.Unlock()
	c.FailLeaseStorage(host)
	c.clock.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if h.pathsDown() {
			return // a path fault meanwhile keeps the lease storage failed
		}
		h.leaseStorageBack()
	})
}

// stalled is how long the host's I/O to the LUN stays suspended.
func (h *Host) stalled() time.Duration { return h.stallUntil.Sub(h.c.clock.Now()) }

func (h *Host) pathsDown() bool { return !h.pathsOK[0] && !h.pathsOK[1] }

// pauseDomainsOnEIO pauses running guests whose I/O now errors (error_policy=stop).
func (h *Host) pauseDomainsOnEIO() {
	for _, d := range h.domains {
		if d.state != "running" || d.errorPolicy != "stop" {
			continue
		}
		for _, name := range d.disks {
			dev := h.active[name]
			if dev != nil && (dev.errTbl || (h.pathsDown() && !h.queueing)) {
				d.state, d.reason = "paused", "I/O error"
			}
		}
	}
}

func (ls *lockspace) cancelTimeline() {
	for _, stop := range ls.stops {
		stop()
	}
	ls.stops = nil
}

// FailLeaseStorage makes the host's lease I/O fail from now on: renewal fails
// at 8 × io_timeout (kill_vg set, kill command run once, when the host holds
// an LV lock; otherwise sanlock just drops the lockspace), the watchdog resets
// the host kill_grace (40 s) later unless its leases were dropped, and 60 s
// after the renewal failure other hosts may take its locks, whether it
// dropped them or not (the release cannot reach the disk).
func (c *Cluster) FailLeaseStorage(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.mustHost(host)
	h.leaseFail = true
	ls := h.ls
	if ls == nil || !ls.failedAt.IsZero() {
		return
	}
	ls.failedAt = c.clock.Now()
	io := c.opt.IOTimeout
	ls.stops = append(ls.stops,
		c.clock.AfterFunc(renewFactor*io, func() { c.renewalFailed(h, ls) }),
		c.clock.AfterFunc(renewFactor*io+killGrace, func() { c.watchdogDue(h, ls) }),
		c.clock.AfterFunc(c.expiry(), func() {
			c.mu.Lock()
			ls.expired = true
			c.mu.Unlock()
		}))
}

// expiry is how long after a lease storage fault other hosts consider the
// host dead.
func (c *Cluster) expiry() time.Duration { return renewFactor*c.opt.IOTimeout + watchdogFire }

func (c *Cluster) renewalFailed(h *Host, ls *lockspace) {
	c.mu.Lock()
	if h.ls != ls {
		c.mu.Unlock()
		return
	}
	ls.renewFailed = true
	if len(h.heldLVs()) == 0 {
		// sanlock's kill_pids skips clients holding nothing in the
		// lockspace: no killpath, so no kill_vg and no kill command;
		// with no pid to wait for, sanlock drops the lockspace (and its
		// watchdog connection) at once.
		ls.dropped = true
		ls.cancelTimeline()
		ls.stops = append(ls.stops, c.clock.AfterFunc(c.expiry()-renewFactor*c.opt.IOTimeout, func() {
			c.mu.Lock()
			ls.expired = true
			c.mu.Unlock()
		}))
		c.mu.Unlock()
		return
	}
	ls.killVG = true
	argv := append(append([]string(nil), h.killArgv...), c.opt.VG)
	hasKill := len(h.killArgv) > 0
	c.mu.Unlock()
	if !hasKill {
		return
	}
	c.runKill(h, ls, argv)
}

// runKill runs the host's kill command (c.mu not held: the callback may run
// commands on the simulated host). Exit 0 means "LVs are offline":
// lvmlockctl drops the VG's locks itself and the watchdog is disarmed.
func (c *Cluster) runKill(h *Host, ls *lockspace, argv []string) {
	code := 1
	if c.opt.RunKill != nil {
		code = c.opt.RunKill(h.spec.Name, argv)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h.kills++
	if code == 0 && h.ls == ls {
		h.dropLocks()
	}
}

func (c *Cluster) watchdogDue(h *Host, ls *lockspace) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.ls != ls || h.spec.NoWatchdog {
		return
	}
	ls.cancelTimeline()
	h.reset()
}

// reset is the watchdog firing: the host reboots and all its state is gone.
// A SAN fault outlives the reboot: paths stay as they were.
func (h *Host) reset() {
	h.resets++
	h.releaseAllLocks()
	h.boot()
}

// releaseAllLocks lets go of every lock. Without lease storage the release
// does not reach the disk: the leases stay the host's until its expiry.
func (h *Host) releaseAllLocks() {
	var until time.Time
	if h.leaseFail && h.ls != nil && !h.ls.failedAt.IsZero() {
		until = h.ls.failedAt.Add(h.c.expiry())
	}
	for _, l := range h.c.lvs {
		if m, ok := l.holders[h.spec.Name]; ok && until.After(h.c.clock.Now()) {
			if l.orphans == nil {
				l.orphans = map[string]orphan{}
			}
			l.orphans[h.spec.Name] = orphan{mode: m, until: until}
		}
		delete(l.holders, h.spec.Name)
	}
}

// forgetOrphans is a fresh join: other hosts see the host's new generation
// and treat the leases of the old one as free.
func (h *Host) forgetOrphans() {
	for _, l := range h.c.lvs {
		delete(l.orphans, h.spec.Name)
	}
}

// rivals are the other hosts whose lease on l still counts, with their mode:
// live holders and orphaned leases not yet expired.
func (h *Host) rivals(l *lv) map[string]string {
	out := map[string]string{}
	for other, m := range l.holders {
		if other != h.spec.Name && h.c.hosts[other].lockUsable() {
			out[other] = m
		}
	}
	now := h.c.clock.Now()
	for other, o := range l.orphans {
		if _, held := out[other]; !held && other != h.spec.Name && now.Before(o.until) {
			out[other] = o.mode
		}
	}
	return out
}

// dropLocks is `lvmlockctl --drop`: locks and lockspace go, devices stay.
func (h *Host) dropLocks() {
	if h.ls != nil {
		h.ls.cancelTimeline()
	}
	h.releaseAllLocks()
	h.ls = nil
	h.everLocked = map[string]bool{}
}

// SetKillCommand configures global/lvmlockctl_kill_command on the host; the
// VG name is appended when it runs (through Options.RunKill).
func (c *Cluster) SetKillCommand(host string, argv []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustHost(host).killArgv = append([]string(nil), argv...)
}

// HangCommands makes every command on the host whose argv, joined by spaces,
// contains pattern block until its context ends. An empty pattern clears.
func (c *Cluster) HangCommands(host, pattern string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.mustHost(host)
	if pattern == "" {
		h.hangs = nil
		return
	}
	h.hangs = append(h.hangs, pattern)
}

// CrashDaemon kills a daemon (sanlock, lvmlockd, multipathd, libvirtd). A
// crashed sanlock loses the lockspace; a crashed lvmlockd orphans its locks:
// they stay held in sanlock until the lockspace is dropped.
func (c *Cluster) CrashDaemon(host, unit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.mustHost(host)
	h.daemons[unit] = false
	h.crashed[unit] = true
	if unit == "sanlock" && h.ls != nil {
		h.ls.cancelTimeline()
		h.releaseAllLocks()
		h.ls = nil
	}
}

// SkewClock shifts the host's own clock (sanlock timestamps) by d.
func (c *Cluster) SkewClock(host string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustHost(host).skew = d
}

// DefineDomain adds a shut-off libvirt domain whose disks are the named LVs.
func (c *Cluster) DefineDomain(host, name string, lvNames ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.mustHost(host)
	if h.domains[name] == nil {
		h.domOrder = append(h.domOrder, name)
	}
	h.domains[name] = &domain{name: name, disks: lvNames, state: "shut off", reason: "unknown", errorPolicy: "stop"}
}

// SetErrorPolicy sets a defined domain's disks' error_policy (nova's is
// "stop"; "report" hands the EIO to the guest, which keeps running).
func (c *Cluster) SetErrorPolicy(host, name, policy string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustHost(host).domains[name].errorPolicy = policy
}

// HostState is a snapshot for assertions.
type HostState struct {
	Resets, KillRuns int
	LockspaceJoined  bool
	KillVG           bool
	Active           map[string]string // LV → "linear" | "error"
	Locks            map[string]string // LV → ex | sh
	Domains          map[string]string // domain → state
}

// State returns a snapshot of the host.
func (c *Cluster) State(host string) HostState {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.mustHost(host)
	s := HostState{Resets: h.resets, KillRuns: h.kills, LockspaceJoined: h.inSanlock() != nil,
		Active: map[string]string{}, Locks: map[string]string{}, Domains: map[string]string{}}
	if h.ls != nil {
		s.KillVG = h.ls.killVG
	}
	for n, d := range h.active {
		s.Active[n] = "linear"
		if d.errTbl {
			s.Active[n] = "error"
		}
	}
	for _, l := range c.lvs {
		if m, ok := l.holders[h.spec.Name]; ok {
			s.Locks[l.name] = m
		}
	}
	for n, d := range h.domains {
		s.Domains[n] = d.state
	}
	return s
}

// Volume is a snapshot of one LV of the VG, for assertions.
type Volume struct {
	Extents      int64
	LeaseVersion int    // bumped by every exclusive acquire
	Origin       string // a snapshot's origin
}

// Volumes returns a snapshot of the VG's LVs by name.
func (c *Cluster) Volumes() map[string]Volume {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Volume{}
	for name, l := range c.lvs {
		out[name] = Volume{Extents: l.extents, LeaseVersion: l.lver, Origin: l.origin}
	}
	return out
}
