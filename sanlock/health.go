package sanlock

import (
	"strings"
	"time"
)

// LockspacePrefix is how lvmlockd names a VG's sanlock lockspace.
const LockspacePrefix = "lvm_"

// DefaultIOTimeout is sanlock's DEFAULT_IO_TIMEOUT in seconds, assumed when
// neither the lockspace nor the daemon printed io_timeout.
const DefaultIOTimeout = 10

// WarnAfter and FailAfter are sanlock's id_renewal_warn_seconds (6×io) and
// id_renewal_fail_seconds (8×io) (sanlock src/timeouts.c; LOCKING_ANCHORS
// §2.1): past FailAfter since the last successful renewal the lease is lost
// and sanlock runs the killpath (`lvmlockctl --kill VG`).
func WarnAfter(ioTimeout int) time.Duration { return time.Duration(6*ioTimeout) * time.Second }
func FailAfter(ioTimeout int) time.Duration { return time.Duration(8*ioTimeout) * time.Second }

// State is a lockspace's health, worst last.
type State string

const (
	StateAbsent   State = "absent"   // not in sanlock: not started, or already dropped
	StateStarting State = "starting" // being joined (ADD) or left (REM)
	StateJoined   State = "joined"
	StateWarning  State = "warning" // renewals late by 6×io_timeout
	StateFailed   State = "failed"  // renewal failed (8×io_timeout, renew_fail, space_dead)
	StateKilled   State = "killed"  // lvmlockctl --kill ran: LVs must go offline, then --drop
	// StateDropped: sanlock dropped the lockspace that lvmlockd still has:
	// its lease failed while this host held no LV lock, so sanlock ran no
	// killpath. Nothing can be locked until it is dropped and started again.
	StateDropped State = "dropped"
)

// Lockspace is the health of one VG's lockspace on this host, merged from
// `sanlock client status -D`, `lvmlockctl --info` and `lvmlockctl --info
// --dump`. Plain status/info look unchanged after a lease failure; the
// signals are space_dead/renew_fail/killing_pids, the renewal age and kill_vg.
type Lockspace struct {
	VG     string
	Name   string // "lvm_" + VG
	HostID uint64
	// Generation is sanlock's host_generation: it grows each time this
	// host_id joins the lockspace again.
	Generation uint64
	Joined     bool // in sanlock and not pending ADD/REM
	Pending    string

	SpaceDead          bool
	KillingPIDs        bool
	RenewFail          bool
	RenewalLastResult  int    // 1 on success, -errno (e.g. -5 EIO) on failure
	RenewalLastSuccess uint64 // sanlock monotonic seconds
	// Now is sanlock's monotonic clock when status was taken (daemon
	// monotime=), or renewal_last_attempt when monotime was not printed,
	// which makes RenewalAge a lower bound. 0 when neither is known.
	Now        uint64
	RenewalAge time.Duration // Now - RenewalLastSuccess; 0 when unknown
	// RenewalFailing: a renewal was attempted after the last success (or
	// the attempt time was not printed). Right after add_lockspace the age
	// is the whole join time (~20 s) with no attempt yet, which is not a
	// late renewal: seen on a real sanlock 3.8.5.
	RenewalFailing bool
	IOTimeout      int // seconds

	KillVG bool // kill_vg=1 in the dump
	DropVG bool // drop_vg=1 in the dump (older lvm2)
	// InLvmlockd: lvmlockd's dump has the lockspace started (create_done)
	// and not stopping; SanlockRead: sanlock's status was read, so a
	// lockspace missing there is really missing.
	InLvmlockd, SanlockRead bool

	// Locks maps LV UUID to the lock this host holds (ex or sh only).
	Locks map[string]LockMode
}

// State classifies the lockspace. The order matters: a killed VG is also
// failed, and a failed one usually also late.
func (l *Lockspace) State() State {
	switch {
	case l.KillVG:
		return StateKilled
	case !l.Joined && l.Pending == "" && l.InLvmlockd && l.SanlockRead:
		return StateDropped
	case !l.Joined && l.Pending == "":
		return StateAbsent
	case l.SpaceDead || l.RenewFail || l.KillingPIDs:
		return StateFailed
	case l.Pending != "":
		return StateStarting
	case l.RenewalFailing && l.RenewalAge >= FailAfter(l.IOTimeout):
		return StateFailed
	case l.RenewalFailing && l.RenewalAge >= WarnAfter(l.IOTimeout):
		return StateWarning
	}
	return StateJoined
}

// Health merges the three snapshots into one Lockspace per VG. Any of them
// may be nil (the command failed or was not run); a VG appears when any
// source names it.
func Health(status *Status, info *Info, dump *Dump) map[string]*Lockspace {
	out := map[string]*Lockspace{}
	get := func(vg string) *Lockspace {
		if l, ok := out[vg]; ok {
			return l
		}
		l := &Lockspace{VG: vg, Name: LockspacePrefix + vg, Locks: map[string]LockMode{}}
		out[vg] = l
		return l
	}
	if status != nil {
		daemonIO := status.Daemon.Int("io_timeout")
		now := status.Daemon.Uint("monotime")
		for i := range status.Lockspaces {
			s := &status.Lockspaces[i]
			vg, ok := strings.CutPrefix(s.Name, LockspacePrefix)
			if !ok || vg == "" {
				continue
			}
			l := get(vg)
			l.fromSanlock(s, daemonIO, now)
		}
		// sanlock's resource lines carry the mode too (":SH" or a lease
		// version): they cover the case where lvmlockctl --info failed.
		for _, r := range status.Resources {
			vg, ok := strings.CutPrefix(r.Lockspace, LockspacePrefix)
			if l := out[vg]; ok && l != nil && !strings.HasSuffix(r.Name, "LK") {
				if r.Shared {
					l.Locks[r.Name] = ModeSh
				} else {
					l.Locks[r.Name] = ModeEx
				}
			}
		}
	}
	if info != nil {
		for _, v := range info.VGs {
			if v.LockType != "" && v.LockType != "sanlock" {
				continue
			}
			l := get(v.Name)
			for uuid, mode := range v.LVs {
				if mode.Held() {
					l.Locks[uuid] = mode
				} else {
					delete(l.Locks, uuid)
				}
			}
		}
	}
	if dump != nil {
		for i := range dump.Lockspaces {
			d := &dump.Lockspaces[i]
			if lm := d.Fields["lm_type"]; d.VGName() == "" || (lm != "" && lm != "sanlock") {
				continue
			}
			l := get(d.VGName())
			l.KillVG, l.DropVG = d.KillVG(), d.DropVG()
			l.InLvmlockd = d.Fields.Bool("create_done") && !d.Fields.Bool("thread_stop") && !d.Fields.Bool("thread_done")
			if l.HostID == 0 {
				l.HostID = d.Fields.Uint("host_id")
			}
		}
	}
	for _, l := range out {
		l.SanlockRead = status != nil
	}
	return out
}

func (l *Lockspace) fromSanlock(s *SpaceStatus, daemonIO int, now uint64) {
	f := s.Fields
	l.HostID, l.Pending = s.HostID, s.Pending
	l.Joined = s.Pending == ""
	l.SpaceDead, l.KillingPIDs, l.RenewFail = f.Bool("space_dead"), f.Bool("killing_pids"), f.Bool("renew_fail")
	l.Generation = f.Uint("host_generation")
	l.RenewalLastResult = f.Int("renewal_last_result")
	l.RenewalLastSuccess = f.Uint("renewal_last_success")
	l.IOTimeout = s.IOTimeout()
	if l.IOTimeout == 0 {
		l.IOTimeout = daemonIO
	}
	if l.IOTimeout == 0 {
		l.IOTimeout = DefaultIOTimeout
	}
	_, hasAttempt := f["renewal_last_attempt"]
	attempt := f.Uint("renewal_last_attempt")
	l.RenewalFailing = !hasAttempt || attempt > l.RenewalLastSuccess
	l.Now = now
	if l.Now == 0 {
		l.Now = attempt
	}
	if l.Now > l.RenewalLastSuccess && l.RenewalLastSuccess > 0 {
		l.RenewalAge = time.Duration(l.Now-l.RenewalLastSuccess) * time.Second
	}
}
