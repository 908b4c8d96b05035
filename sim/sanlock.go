package sim

import (
	"fmt"
	"sort"
	"strings"
)

func (c *Cluster) lsName() string   { return "lvm_" + c.opt.VG }
func (c *Cluster) leaseDev() string { return "/dev/mapper/" + dmName(c.opt.VG, "lvmlock") }
func (h *Host) daemonName() string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x.%s", h.spec.HostID, h.spec.HostID, h.spec.Name)
}
func (h *Host) lsLine() string {
	return fmt.Sprintf("s %s:%d:%s:0", h.c.lsName(), h.spec.HostID, h.c.leaseDev())
}
func (c *Cluster) ioSeconds() int64 { return int64(c.opt.IOTimeout.Seconds()) }

// reportedIO is the io_timeout h's sanlock prints for its lockspace.
func (h *Host) reportedIO() int64 {
	if h.spec.IOTimeout > 0 {
		return int64(h.spec.IOTimeout.Seconds())
	}
	return h.c.ioSeconds()
}
func (h *Host) joining() bool { return h.ls != nil && h.c.clock.Now().Before(h.ls.readyAt) }

// inSanlock: the host's lockspace as sanlock sees it (nil when sanlock
// dropped it under lvmlockd).
func (h *Host) inSanlock() *lockspace {
	if h.ls == nil || h.ls.dropped {
		return nil
	}
	return h.ls
}
func (h *Host) killingPids() bool { return h.ls != nil && h.ls.renewFailed && len(h.heldLVs()) > 0 }
func (h *Host) lastRenewalMono() int64 {
	if h.ls != nil && !h.ls.failedAt.IsZero() {
		return int64(h.ls.failedAt.Add(h.skew).Sub(h.c.start).Seconds())
	}
	return h.monotime()
}

// heldLVs are the LVs this host holds a lease on, by lease offset (as sanlock lists them).
func (h *Host) heldLVs() []*lv {
	var out []*lv
	for _, l := range h.c.lvs {
		if _, ok := l.holders[h.spec.Name]; ok {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lockOffset > out[j].lockOffset })
	return out
}

func (h *Host) resourceLine(l *lv) string {
	ver := fmt.Sprint(l.lver)
	if l.holders[h.spec.Name] == modeSh {
		ver = "SH"
	}
	return fmt.Sprintf("r %s:%s:%s:%d:%s p %d", h.c.lsName(), l.uuid, h.c.leaseDev(), l.lockOffset, ver, pidLvmlockd)
}

// sanlock answers `sanlock client status|host_status|gets|renewal`.
func (h *Host) sanlock(a *args) reply {
	if len(a.pos) != 2 || a.pos[0] != "client" {
		return unsupported(append([]string{"sanlock"}, a.argv...))
	}
	sub := a.pos[1]
	if !h.daemons["sanlock"] {
		// Not recorded; follows sanlock's client error print.
		return reply{stdout: sub + " error -111\n", code: 1}
	}
	switch sub {
	case "status":
		return reply{stdout: h.status(a.has("-D"))}
	case "host_status":
		return reply{stdout: h.hostStatus(a.has("-D"), a.flags["-s"])}
	case "gets":
		return reply{stdout: h.gets()}
	case "renewal":
		return reply{stdout: h.renewal(a.flags["-s"])}
	}
	return unsupported(append([]string{"sanlock"}, a.argv...))
}

func kv(b *strings.Builder, pairs ...any) {
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(b, "    %s=%v\n", pairs[i], pairs[i+1])
	}
}

func (h *Host) status(detail bool) string {
	var b strings.Builder
	c := h.c
	b.WriteString("daemon " + h.daemonName() + "\n")
	watchdog := 1
	if h.spec.NoWatchdog {
		watchdog = 0
	}
	if detail {
		kv(&b, "our_host_name", h.daemonName(), "use_watchdog", watchdog, "high_priority", 0, "mlock_level", 1,
			"quiet_fail", 1, "debug_renew", 0, "renewal_history_size", 180, "gid", 0, "uid", 0, "sh_retries", 8,
			"use_aio", 1, "kill_grace_seconds", 40, "helper_pid", 431, "helper_kill_fd", 7, "helper_full_count", 0,
			"helper_last_status", h.monotime(), "monotime", h.monotime(), "version_str", "3.8.5", "version_num", "3.8.5",
			"version_hex", "03080500", "smproto_hex", "00000001")
	}
	client := func(name string, pid int) {
		fmt.Fprintf(&b, "p %d %s\n", pid, name)
		if detail {
			killCount := 0
			if pid > 0 && h.killingPids() {
				killCount = 1
			}
			kv(&b, "ci", 0, "fd", 9, "pid", pid, "flags", 0, "restricted", 0, "cmd_active", 0, "cmd_last", 0,
				"pid_dead", 0, "kill_count", killCount, "kill_last", 0, "suspend", 0, "need_free", 0)
		}
	}
	client("helper", -1)
	client("listener", -1)
	if h.inSanlock() != nil && h.daemons["lvmlockd"] {
		client("lvmlockd", pidLvmlockd)
	}
	client("status", -1)
	if h.inSanlock() == nil {
		return b.String()
	}
	line := h.lsLine()
	if h.joining() {
		line += " ADD"
	}
	b.WriteString(line + "\n")
	if detail {
		dead, killing, renewFail, result := 0, 0, 0, 1
		if h.ls.renewFailed {
			dead, renewFail, result = 1, 1, -5
		}
		if h.killingPids() {
			killing = 1
		}
		last := h.lastRenewalMono()
		kv(&b, "list", "spaces", "space_id", 1, "io_timeout", h.reportedIO(), "sector_size", 512, "align_size", 1048576,
			"host_generation", 1, "renew_fail", renewFail, "space_dead", dead, "killing_pids", killing, "used_retries", 0,
			"external_used", 0, "used_by_orphans", 0, "renewal_read_extend_sec", c.ioSeconds(), "corrupt_result", 0,
			"acquire_last_result", 1, "renewal_last_result", result, "acquire_last_attempt", int64(h.ls.readyAt.Sub(c.start).Seconds()),
			"acquire_last_success", int64(h.ls.readyAt.Sub(c.start).Seconds()), "renewal_last_attempt", h.monotime(), "renewal_last_success", last)
	}
	for _, l := range h.heldLVs() {
		b.WriteString(h.resourceLine(l) + "\n")
		if detail {
			flags := 8
			if l.holders[h.spec.Name] == modeSh {
				flags = 1
			}
			kv(&b, "list", "held", "flags", flags, "sector_size", 512, "align_size", 1048576, "lver", l.lver, "reused", 0)
		}
	}
	return b.String()
}

// peers are the hosts whose delta lease is in the lockspace, by host_id.
func (c *Cluster) peers() []*Host {
	var out []*Host
	for _, name := range c.order {
		if h := c.hosts[name]; h.ls != nil {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.HostID < out[j].spec.HostID })
	return out
}

func (h *Host) hostStatus(detail bool, ls string) string {
	c := h.c
	if h.inSanlock() == nil || (ls != "" && ls != c.lsName()) {
		return ""
	}
	var b strings.Builder
	b.WriteString("lockspace " + c.lsName() + "\n")
	for _, p := range c.peers() {
		ts := p.lastRenewalMono()
		fmt.Fprintf(&b, "%d timestamp %d\n", p.spec.HostID, ts)
		if detail {
			kv(&b, "last_check", h.monotime(), "last_live", ts, "last_req", 0, "owner_id", p.spec.HostID,
				"owner_generation", 1, "timestamp", ts, "io_timeout", c.ioSeconds(), "owner_name", p.daemonName())
		}
	}
	return b.String()
}

func (h *Host) gets() string {
	if h.inSanlock() == nil {
		return ""
	}
	line := h.lsLine() + " "
	if h.joining() {
		return h.lsLine() + " ADD\nhosts not ready\n"
	}
	var b strings.Builder
	b.WriteString(line + "\n")
	for _, p := range h.c.peers() {
		state := "LIVE"
		if p.ls.expired {
			state = "DEAD"
		} else if p.ls.renewFailed {
			state = "FAIL"
		}
		fmt.Fprintf(&b, "h %d gen 1 timestamp %d %s\n", p.spec.HostID, p.lastRenewalMono(), state)
	}
	return b.String()
}

// renewal prints the last renewals: one every 2 × io_timeout since the join,
// then timed-out attempts while lease storage is failing.
func (h *Host) renewal(ls string) string {
	c := h.c
	if h.inSanlock() == nil || (ls != "" && ls != c.lsName()) {
		return ""
	}
	step := 2 * c.ioSeconds()
	join := int64(h.ls.readyAt.Sub(c.start).Seconds())
	last := h.lastRenewalMono()
	var lines []string
	for t := join; t <= last; t += step {
		lines = append(lines, fmt.Sprintf("timestamp=%d read_ms=1 write_ms=1 next_timeouts=0 next_errors=0", t))
	}
	if !h.ls.failedAt.IsZero() {
		for t := last + step; t <= h.monotime(); t += step {
			lines = append(lines, fmt.Sprintf("timestamp=%d read_ms=%d write_ms=0 next_timeouts=1 next_errors=1", 0, c.ioSeconds()*1000))
		}
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// lvmlockctl answers --info, --info --dump, --kill VG and --drop VG.
func (h *Host) lvmlockctl(a *args) reply {
	c := h.c
	if !h.daemons["lvmlockd"] {
		// Not recorded for a stopped daemon; connect() fails with ECONNREFUSED.
		return fail(1, "socket error -111\n")
	}
	switch {
	case a.has("--kill"):
		if a.flags["--kill"] != c.opt.VG || h.ls == nil {
			return fail(1, "")
		}
		return h.kill()
	case a.has("--drop"):
		if a.flags["--drop"] != c.opt.VG {
			return fail(1, "")
		}
		h.dropLocks()
		return reply{}
	case a.has("--info") && a.has("--dump"):
		return reply{stdout: h.dump()}
	case a.has("--info"):
		return reply{stdout: h.info()}
	}
	return unsupported(append([]string{"lvmlockctl"}, a.argv...))
}

// kill is `lvmlockctl --kill VG` by hand: the VG is marked killed (storage
// failed for sanlock leases) and the configured kill command runs.
func (h *Host) kill() reply {
	c := h.c
	h.ls.killVG = true
	vg := c.opt.VG
	r := reply{stdout: "lvmlockd lost access to locks in VG " + vg + ".\nImmediately deactivate LVs in VG " + vg + ".\nOnce VG is unused, run lvmlockctl --drop " + vg + ".\n"}
	if len(h.killArgv) == 0 {
		r.stderr = "unrecognized config value from /sbin/lvm config --typeconfig full global/lvmlockctl_kill_command\n"
		return r
	}
	ls := h.ls
	argv := append(append([]string(nil), h.killArgv...), vg)
	r.after = func() { c.runKill(h, ls, argv) }
	return r
}

// info lists the lockspace's resources: held ones with their mode, ones
// lvmlockd knows but no longer holds as "un".
func (h *Host) info() string {
	c := h.c
	if h.ls == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "VG %s lock_type=sanlock %s\nLS sanlock %s\nLK VG un ver %d\n", c.opt.VG, c.vgUUID, c.lsName(), h.ls.vgVersion)
	for _, name := range c.lvOrder {
		l := c.lvs[name]
		if !h.everLocked[l.uuid] {
			continue
		}
		mode := l.holders[h.spec.Name]
		if mode == "" {
			mode = "un"
		}
		fmt.Fprintf(&b, "LK LV %s %s\n", mode, l.uuid)
	}
	return b.String()
}

func (h *Host) dump() string {
	c := h.c
	if h.ls == nil {
		return ""
	}
	var b strings.Builder
	bit := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	fmt.Fprintf(&b, "info=ls ls_name=%s vg_name=%s vg_uuid=%s vg_sysid=. vg_args=1.0.0:lvmlock lm_type=sanlock host_id=%d create_fail=0 create_done=%d thread_work=0 thread_stop=0 thread_done=0 kill_vg=%d drop_vg=0 sanlock_gl_enabled=1\n",
		c.lsName(), c.opt.VG, c.vgUUID, h.spec.HostID, bit(!h.joining()), bit(h.ls.killVG))
	fmt.Fprintf(&b, "info=r name=VGLK type=vg mode=un sh_count=0 version=%d\n", h.ls.vgVersion)
	for _, name := range c.lvOrder {
		l := c.lvs[name]
		if !h.everLocked[l.uuid] {
			continue
		}
		mode := l.holders[h.spec.Name]
		if mode == "" {
			fmt.Fprintf(&b, "info=r name=%s type=lv mode=un sh_count=0 version=0\n", l.uuid)
			continue
		}
		fmt.Fprintf(&b, "info=r name=%s type=lv mode=%s sh_count=%d version=0\n", l.uuid, mode, bit(mode == modeSh))
		fmt.Fprintf(&b, "info=lk mode=%s version=0 flags=0x0 client_id=0\n", mode)
	}
	b.WriteString("info=client pid=602 fd=8 pi=2 id=7 name=lvmlockctl\n")
	return b.String()
}
