package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/agent/volumes"
)

// Options tune the view.
type Options struct {
	// Wait is how long answers are gathered after the one fanout call.
	Wait time.Duration
	// Expect names hosts that must answer (e.g. every compute host); a
	// missing one is a finding. Hosts sanlock sees alive are expected too.
	Expect []string
	// MaxClockOffset is the largest clock offset that is not a finding,
	// beyond the measurement's own uncertainty.
	MaxClockOffset time.Duration
}

// DefaultMaxClockOffset: cinder compares service heartbeats across hosts,
// and operators read logs side by side; a few seconds apart already
// misleads both.
const DefaultMaxClockOffset = 2 * time.Second

// HostView is one host's facts and its clock compared with the caller's.
type HostView struct {
	HostFacts
	// ClockOffset is the host's clock minus the caller's, estimated at the
	// middle of the round trip; the truth is within ClockUncertainty.
	ClockOffset      time.Duration `json:"clock_offset_ns"`
	ClockUncertainty time.Duration `json:"clock_uncertainty_ns"`
}

// Report is the cluster view.
type Report struct {
	Answered []HostView `json:"hosts"`
	// Silent are hosts expected or seen alive by sanlock whose agent did
	// not answer, named as best known ("host_id 3 in lvm_vol").
	Silent   []string  `json:"silent"`
	Owners   []Owner   `json:"owners"`
	Findings []Finding `json:"findings"`
	// Messages is what the view cost on the broker: the one request and
	// the replies (O(N) for N hosts).
	Messages int           `json:"messages"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	// LastAnswer is when the slowest answer arrived after the request.
	LastAnswer time.Duration `json:"last_answer_ns"`
	Failed     []string      `json:"failed"` // replies that were errors
}

// Owner is one LV with every host holding it.
type Owner struct {
	VG      string   `json:"volume_group"`
	LV      string   `json:"volume_name"`
	Holders []Holder `json:"holders"`
	// Problems flag what must not be: "conflict" (exclusive on one host,
	// held on another), "no-lock" (active on a host without its lock),
	// "dead-lease" (held by a host whose lease is not healthy). "fenced":
	// active without a lock on a fenced host, the fence's error table.
	// "offline": still on the error target on a host no longer fenced (its
	// lock was lost meanwhile, and something there keeps it open).
	Problems []string `json:"problems"`
}

// Holder is one host's hold on an LV.
type Holder struct {
	Host   string     `json:"host"`
	HostID uint64     `json:"host_id"`
	Mode   string     `json:"mode"` // exclusive, shared, "" (active without lock)
	Since  *time.Time `json:"since,omitempty"`
	Active bool       `json:"active"`
	// Offline: its table is the error target (fenced): it cannot write.
	Offline bool `json:"offline"`
	// Lease is the holder's lockspace state: joined is healthy.
	Lease  string `json:"lease"`
	fenced bool
}

// Finding is a mistake found across hosts, with what to do about it.
type Finding struct {
	Kind     string   `json:"kind"`
	Severity string   `json:"severity"` // critical, warning, info
	Hosts    []string `json:"hosts"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix"`
}

// Caller is what Gather needs of an RPC client.
type Caller interface {
	FanoutCall(ctx context.Context, method string, args any, wait time.Duration) (time.Time, []rpc.FanoutReply, error)
}

// Gather asks every agent for its facts with one fanout call and builds
// the view from the answers that arrive within o.Wait.
func Gather(ctx context.Context, c Caller, o Options) (*Report, error) {
	if o.Wait <= 0 {
		o.Wait = 3 * time.Second
	}
	sent, replies, err := c.FanoutCall(ctx, Method, map[string]any{}, o.Wait)
	if err != nil && len(replies) == 0 {
		return nil, err
	}
	var hosts []HostView
	var failed []string
	var last time.Duration
	for _, r := range replies {
		if r.Err != nil {
			failed = append(failed, r.Err.Error())
			continue
		}
		var f HostFacts
		if err := json.Unmarshal(r.Result, &f); err != nil {
			failed = append(failed, "unreadable answer: "+err.Error())
			continue
		}
		rtt := r.Received.Sub(sent)
		last = max(last, rtt)
		mid := sent.Add(rtt / 2)
		hosts = append(hosts, HostView{HostFacts: f, ClockOffset: f.Time().Sub(mid), ClockUncertainty: rtt/2 + time.Millisecond})
	}
	rep := Analyze(hosts, o)
	rep.Failed = failed
	rep.Messages = 1 + len(replies)
	rep.Elapsed, rep.LastAnswer = o.Wait, last
	return rep, nil
}

// Analyze builds the owner map and the findings from the hosts' answers.
func Analyze(hosts []HostView, o Options) *Report {
	if o.MaxClockOffset <= 0 {
		o.MaxClockOffset = DefaultMaxClockOffset
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Host < hosts[j].Host })
	r := &Report{Answered: hosts, Silent: []string{}, Owners: []Owner{}, Findings: []Finding{}, Failed: []string{}}
	r.owners()
	r.findDuplicates()
	r.findClocks(o.MaxClockOffset)
	r.findTimeouts()
	r.findFenceBudget()
	r.findVersions()
	r.findSilent(o.Expect)
	r.findLockProblems()
	return r
}

func (r *Report) add(kind, severity string, hosts []string, fix, format string, args ...any) {
	sort.Strings(hosts)
	r.Findings = append(r.Findings, Finding{Kind: kind, Severity: severity, Hosts: hosts, Message: fmt.Sprintf(format, args...), Fix: fix})
}

// lockspace returns h's membership of vg's lockspace, nil when not configured.
func (h HostView) lockspace(vg string) *LockspaceFacts {
	for i := range h.Lockspaces {
		if h.Lockspaces[i].VG == vg {
			return &h.Lockspaces[i]
		}
	}
	return nil
}

func (r *Report) owners() {
	byLV := map[[2]string]*Owner{}
	for _, h := range r.Answered {
		for _, hd := range h.Holdings {
			k := [2]string{hd.VG, hd.LV}
			o := byLV[k]
			if o == nil {
				o = &Owner{VG: hd.VG, LV: hd.LV, Problems: []string{}}
				byLV[k] = o
			}
			holder := Holder{Host: h.Host, Mode: string(hd.Mode), Since: hd.Since, Active: hd.Active, Offline: hd.Offline, fenced: h.Recovery == "fenced"}
			if ls := h.lockspace(hd.VG); ls != nil {
				holder.HostID, holder.Lease = ls.HostID, ls.State
			}
			o.Holders = append(o.Holders, holder)
		}
	}
	for _, o := range byLV {
		sort.Slice(o.Holders, func(i, j int) bool { return o.Holders[i].Host < o.Holders[j].Host })
		locked, exclusive := 0, false
		for _, h := range o.Holders {
			switch {
			case h.Mode == "" && h.fenced:
				o.Problems = appendOnce(o.Problems, "fenced")
				continue
			case h.Mode == "" && h.Offline:
				o.Problems = appendOnce(o.Problems, "offline")
				continue
			case h.Mode == "":
				o.Problems = appendOnce(o.Problems, "no-lock")
				continue
			}
			locked++
			exclusive = exclusive || h.Mode == string(volumes.Exclusive)
			if h.Lease != "joined" {
				o.Problems = appendOnce(o.Problems, "dead-lease")
			}
		}
		if exclusive && locked > 1 {
			o.Problems = appendOnce(o.Problems, "conflict")
		}
		r.Owners = append(r.Owners, *o)
	}
	sort.Slice(r.Owners, func(i, j int) bool {
		if r.Owners[i].VG != r.Owners[j].VG {
			return r.Owners[i].VG < r.Owners[j].VG
		}
		return r.Owners[i].LV < r.Owners[j].LV
	})
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// groups maps a value to the hosts that have it, skipping "".
func groups(hosts []HostView, value func(HostView) string) map[string][]string {
	out := map[string][]string{}
	for _, h := range hosts {
		if v := value(h); v != "" {
			out[v] = append(out[v], h.Host)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func (r *Report) findDuplicates() {
	for _, vg := range r.vgs() {
		// The joined host_id, and the one the next join will use.
		ids := map[string][]string{}
		for _, h := range r.Answered {
			var mine []uint64
			if ls := h.lockspace(vg); ls != nil && ls.HostID != 0 {
				mine = append(mine, ls.HostID)
			}
			if h.ConfiguredHostID != 0 && !slices.Contains(mine, h.ConfiguredHostID) {
				mine = append(mine, h.ConfiguredHostID)
			}
			for _, id := range mine {
				ids[fmt.Sprint(id)] = append(ids[fmt.Sprint(id)], h.Host)
			}
		}
		for _, id := range sortedKeys(ids) {
			if hs := ids[id]; len(hs) > 1 {
				r.add("duplicate_host_id", "critical", hs,
					"give each host its own host_id (aos-agent install --host-id N writes local/host_id in lvmlocal.conf), then on the host that changed: stop its VMs, vgchange --lockstop, vgchange --lockstart",
					"%s use host_id %s in the lockspace of VG %s: sanlock lets only one of them join (the other's join fails, host_id busy: seen in the lab), so whichever starts second can take no lock", strings.Join(hs, " and "), id, vg)
			}
		}
	}
	for _, h := range r.Answered {
		for _, ls := range h.Lockspaces {
			if ls.HostID != 0 && h.ConfiguredHostID != 0 && ls.HostID != h.ConfiguredHostID {
				r.add("host_id_not_applied", "warning", []string{h.Host},
					"if the new host_id is meant, restart the lockspace at a quiet moment (stop its VMs, vgchange --lockstop, --lockstart); else restore lvmlocal.conf",
					"%s joined the lockspace of VG %s as host_id %d, but lvmlocal.conf now says %d: the next join uses %d", h.Host, ls.VG, ls.HostID, h.ConfiguredHostID, h.ConfiguredHostID)
			}
		}
	}
	names := groups(r.Answered, func(h HostView) string { return h.InitiatorName })
	for _, n := range sortedKeys(names) {
		if hs := names[n]; len(hs) > 1 {
			r.add("duplicate_initiator_name", "critical", hs,
				"on all but one: write a new name (iscsi-iname) to /etc/iscsi/initiatorname.iscsi, restart iscsid, and map the new name on the SAN",
				"%s share the iSCSI initiator name %s (a cloned image): the SAN cannot tell their sessions apart", strings.Join(hs, " and "), n)
		}
	}
}

func (r *Report) findClocks(limit time.Duration) {
	for _, h := range r.Answered {
		off := h.ClockOffset
		if off < 0 {
			off = -off
		}
		if off-h.ClockUncertainty > limit {
			r.add("clock_offset", "warning", []string{h.Host},
				"synchronise every host with the same NTP servers (chrony or systemd-timesyncd) and check `timedatectl`",
				"%s's clock is %s off this host's (±%s), beyond %s: cinder marks services down, and logs across hosts no longer line up",
				h.Host, h.ClockOffset.Round(time.Millisecond), h.ClockUncertainty.Round(time.Millisecond), limit)
		}
	}
}

func (r *Report) findTimeouts() {
	for _, vg := range r.vgs() {
		io := groups(r.Answered, func(h HostView) string {
			if ls := h.lockspace(vg); ls != nil && ls.IOTimeout > 0 && ls.State != "absent" {
				return fmt.Sprint(ls.IOTimeout)
			}
			return ""
		})
		if len(io) > 1 {
			var parts, hs []string
			for _, v := range sortedKeys(io) {
				parts = append(parts, fmt.Sprintf("%s s on %s", v, strings.Join(io[v], ", ")))
				hs = append(hs, io[v]...)
			}
			r.add("timeouts_disagree", "warning", hs,
				"set one sanlock io_timeout everywhere (lvmlockd -o / sanlock's -o, the same on every host) and restart the lockspaces one host at a time",
				"sanlock io_timeout differs in the lockspace of VG %s (%s): a lease expires at 8 × io_timeout, so hosts wait for each other's expiry with different clocks, and the fence's budget differs per host", vg, strings.Join(parts, "; "))
		}
	}
	// A fenced host's fence turned queueing off on purpose.
	q := groups(r.Answered, func(h HostView) string {
		if h.Multipath != nil && h.Multipath.Present && h.Recovery != "fenced" {
			return h.Multipath.Queueing
		}
		return ""
	})
	if len(q) > 1 {
		var parts, hs []string
		for _, v := range sortedKeys(q) {
			parts = append(parts, fmt.Sprintf("%q on %s", v, strings.Join(q[v], ", ")))
			hs = append(hs, q[v]...)
		}
		r.add("timeouts_disagree", "warning", hs,
			"use the same no_path_retry and polling_interval in every host's multipath.conf and reload multipathd",
			"the shared LUN's multipath queueing differs across hosts (%s): hosts that queue longer see I/O errors later, after their lease may have expired", strings.Join(parts, "; "))
	}
}

// findFenceBudget checks each host's own settings against its lease: the
// fence must see I/O errors, and run, before the lease expires elsewhere.
func (r *Report) findFenceBudget() {
	for _, h := range r.Answered {
		t := h.Timeouts
		if t == nil {
			continue
		}
		io := 0
		for _, ls := range h.Lockspaces {
			if ls.IOTimeout > 0 && ls.State != "absent" {
				io = max(io, ls.IOTimeout)
			}
		}
		if io > 0 {
			fails := 8 * io
			if t.MultipathQueueSeconds < 0 || t.MultipathQueueSeconds > fails {
				queue := fmt.Sprintf("%d s", t.MultipathQueueSeconds)
				if t.MultipathQueueSeconds < 0 {
					queue = "forever"
				}
				r.add("fence_budget", "critical", []string{h.Host},
					fmt.Sprintf("set no_path_retry so that no_path_retry × polling_interval (%d s) is at most %d s in multipath.conf, and reload multipathd; `aos-agent doctor` checks it", t.Multipath.PollingInterval, fails),
					"%s's multipath queues I/O %s after the last path fails (no_path_retry %s × polling_interval %d s), but its lease fails after %d s (8 × io_timeout %d s): the kill hook's error tables wait behind queued I/O and the watchdog resets the host",
					h.Host, queue, t.Multipath.NoPathRetry, t.Multipath.PollingInterval, fails, io)
			}
			if t.KillCommand == "" {
				r.add("no_kill_command", "warning", []string{h.Host},
					"aos-agent install (sets lvm.conf's global/lvmlockctl_kill_command to the agent's kill hook)",
					"%s has no lvmlockctl_kill_command: when it loses its lease, sanlock's watchdog resets the host instead of the agent fencing its LVs and keeping its VMs", h.Host)
			}
		}
		if len(t.QemuDisksNotStopping) > 0 {
			r.add("qemu_error_policy", "warning", []string{h.Host},
				"give the disks error_policy='stop' and rerror_policy='stop' in the domain XML (oVirt does so for all shared-storage disks): a guest that sees the EIO may remount read-only or lose writes; a paused one is resumed by recovery once the LV is locked again",
				"on %s, %d disk(s) on the shared VG do not pause their guest on an I/O error: %s", h.Host, len(t.QemuDisksNotStopping), strings.Join(t.QemuDisksNotStopping, "; "))
		}
	}
}

func (r *Report) findVersions() {
	for _, v := range []struct {
		name, severity string
		get            func(HostView) string
	}{
		{"agent", "warning", func(h HostView) string { return h.AgentVersion }},
		{"lvm2", "info", func(h HostView) string { return h.LVMVersion }},
		{"sanlock", "info", func(h HostView) string { return h.SanlockVersion }},
	} {
		g := groups(r.Answered, v.get)
		if len(g) < 2 {
			continue
		}
		var parts, hs []string
		for _, k := range sortedKeys(g) {
			parts = append(parts, fmt.Sprintf("%s on %s", k, strings.Join(g[k], ", ")))
			hs = append(hs, g[k]...)
		}
		r.add("mixed_versions", v.severity, hs,
			"finish the rolling upgrade: install the same package version on every host",
			"%s versions differ: %s", v.name, strings.Join(parts, "; "))
	}
}

// findSilent names hosts that should have answered and did not: the
// expected ones, and host_ids sanlock sees alive in a lockspace that no
// answering agent holds. The reverse, an agent whose own host_id no
// other host sees alive, is a host outside the lockspace.
func (r *Report) findSilent(expect []string) {
	answered := map[string]bool{}
	for _, h := range r.Answered {
		answered[h.Host] = true
	}
	for _, e := range expect {
		if !answered[e] {
			r.Silent = append(r.Silent, e)
			r.add("agent_silent", "critical", []string{e},
				"check the agent on that host: systemctl status aos-agent; journalctl -u aos-agent; its broker connection",
				"%s did not answer", e)
		}
	}
	for _, vg := range r.vgs() {
		claimed := map[uint64]bool{}
		live := map[uint64][]string{} // host_id → hosts that see it LIVE
		for _, h := range r.Answered {
			ls := h.lockspace(vg)
			if ls == nil {
				continue
			}
			if ls.HostID != 0 {
				claimed[ls.HostID] = true
			}
			// A fenced host's lockspace is gone while its lease still
			// looks alive elsewhere: its agent answers for the host_id
			// it is configured with.
			if h.ConfiguredHostID != 0 {
				claimed[h.ConfiguredHostID] = true
			}
			for _, p := range ls.Peers {
				if p.State == "LIVE" {
					live[p.HostID] = append(live[p.HostID], h.Host)
				}
			}
		}
		ids := make([]uint64, 0, len(live))
		for id := range live {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if !claimed[id] {
				name := fmt.Sprintf("host_id %d in the lockspace of VG %s", id, vg)
				r.Silent = append(r.Silent, name)
				r.add("agent_silent", "critical", live[id],
					"find the host with that host_id (lvmlocal.conf local/host_id) and start its agent; until then cinder cannot reach it",
					"sanlock sees %s alive (as read on %s) but no agent answered for it", name, strings.Join(live[id], ", "))
			}
		}
		// The reverse: an agent whose host_id another host's sanlock does
		// not see alive.
		for _, h := range r.Answered {
			ls := h.lockspace(vg)
			if ls == nil || ls.State != "joined" || ls.HostID == 0 {
				continue
			}
			var notSeen []string
			for _, o := range r.Answered {
				ols := o.lockspace(vg)
				if o.Host == h.Host || ols == nil || ols.State != "joined" || len(ols.Peers) == 0 {
					continue
				}
				// UNKNOWN is a lockspace that joined moments ago and has
				// not yet watched its peers renew: no evidence either way.
				if !slices.ContainsFunc(ols.Peers, func(p Peer) bool { return p.HostID == ls.HostID && (p.State == "LIVE" || p.State == "UNKNOWN") }) {
					notSeen = append(notSeen, o.Host)
				}
			}
			if len(notSeen) > 0 {
				r.add("not_seen_alive", "warning", append([]string{h.Host}, notSeen...),
					"compare the lockspace on both (sanlock client gets -h 1): a host seen FAIL or DEAD is losing its lease storage; check its paths",
					"%s is joined to the lockspace of VG %s as host_id %d, but sanlock on %s does not see it alive", h.Host, vg, ls.HostID, strings.Join(notSeen, ", "))
			}
		}
		for _, h := range r.Answered {
			ls := h.lockspace(vg)
			if ls == nil || ls.State == "joined" || ls.State == "starting" {
				continue
			}
			if h.Recovery == "fenced" {
				r.add("fenced", "critical", []string{h.Host},
					"nothing while the storage is away: the agent recovers the host by itself when its paths return (or: aos-agent recover "+vg+"); its LVs stay offline and its VMs paused until then",
					"%s was fenced after losing the leases of VG %s (lockspace %s): its LVs carry error tables, other hosts may take their locks", h.Host, vg, ls.State)
				continue
			}
			r.add("not_in_lockspace", "critical", []string{h.Host},
				"see the host's runbook for its state (docs/runbooks): a failed or killed lease means the host was fenced; dropped means its lease failed while it held no lock (its agent starts it again once its paths are back); absent means lockstart did not run",
				"%s answers but its lockspace of VG %s is %s: it can take no LV lock", h.Host, vg, ls.State)
		}
	}
}

func (r *Report) findLockProblems() {
	for _, o := range r.Owners {
		var hs []string
		for _, h := range o.Holders {
			hs = append(hs, h.Host)
		}
		for _, p := range o.Problems {
			switch p {
			case "conflict":
				r.add("lock_conflict", "critical", hs,
					"stop writing the LV on all but one host now; a conflict means two hosts share a host_id or a lock was bypassed",
					"%s/%s is held exclusively on one host while another holds it too: %s", o.VG, o.LV, holderList(o.Holders))
			case "no-lock":
				r.add("active_without_lock", "critical", hs,
					"deactivate the LV on that host (lvchange -an), then attach it again through cinder so the lock is taken",
					"%s/%s is active on a host that holds no lock for it: %s", o.VG, o.LV, holderList(o.Holders))
			case "offline":
				var offline []string
				for _, h := range o.Holders {
					if h.Mode == "" && h.Offline && !h.fenced {
						offline = append(offline, h.Host)
					}
				}
				r.add("lv_offline", "warning", offline,
					"stop or destroy what still holds the device open there (a VM that must not be resumed: its volume was lost to another host), then deactivate the LV there",
					"%s/%s is still on the error target on %s after recovery: it cannot write, but nothing there can use it until it is deactivated (holders: %s)", o.VG, o.LV, strings.Join(offline, ", "), holderList(o.Holders))
			case "dead-lease":
				r.add("lock_on_dead_lease", "warning", hs,
					"the holder was fenced or is losing its lease: follow the recovery runbook on it (docs/runbooks)",
					"%s/%s is held by a host whose lease is not healthy: %s", o.VG, o.LV, holderList(o.Holders))
			}
		}
	}
}

func holderList(hs []Holder) string {
	var parts []string
	for _, h := range hs {
		mode := h.Mode
		if mode == "" {
			mode = "no lock"
		}
		parts = append(parts, fmt.Sprintf("%s (%s, lease %s)", h.Host, mode, h.Lease))
	}
	return strings.Join(parts, ", ")
}

// vgs lists every VG any host reported a lockspace for.
func (r *Report) vgs() []string {
	set := map[string][]string{}
	for _, h := range r.Answered {
		for _, ls := range h.Lockspaces {
			set[ls.VG] = nil
		}
	}
	return sortedKeys(set)
}
