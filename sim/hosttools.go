package sim

import (
	"fmt"
	"sort"
	"strings"
)

// --- multipathd ------------------------------------------------------------

var paths = [2]struct{ dev, devT, hcil string }{{"sda", "8:0", "2:0:0:0"}, {"sdb", "8:16", "3:0:0:0"}}

func (h *Host) multipathd(a *args) reply {
	if !h.daemons["multipathd"] {
		// What the multipath package saw from a real multipathd that is down.
		return fail(1, "")
	}
	cmd := strings.Join(a.pos, " ")
	switch {
	case cmd == "show maps json":
		return reply{stdout: h.mapsJSON()}
	case len(a.pos) == 4 && cmd == "show map "+a.pos[2]+" json":
		if a.pos[2] != "lun0" {
			return reply{stdout: "fail\n", code: 1}
		}
		return reply{stdout: h.mapJSON()}
	case strings.HasPrefix(cmd, "show paths raw format "):
		return reply{stdout: h.pathsRaw(strings.Join(a.pos[4:], " "))}
	case strings.HasPrefix(cmd, "show paths format "):
		return reply{stdout: h.pathsFormat(strings.Join(a.pos[3:], " "))}
	case cmd == "disablequeueing maps" || cmd == "disablequeueing map lun0":
		h.queueing = false
		h.pauseDomainsOnEIO()
		return reply{stdout: "ok\n"}
	case cmd == "restorequeueing maps" || cmd == "restorequeueing map lun0":
		h.queueing = !h.spec.NoPathRetryFail
		return reply{stdout: "ok\n"}
	case len(a.pos) == 3 && (cmd == "disablequeueing map "+a.pos[2] || cmd == "restorequeueing map "+a.pos[2]):
		return reply{stdout: "fail\n", code: 1} // not a map of this host
	}
	return unsupported(append([]string{"multipathd"}, a.argv...))
}

func (h *Host) pathState(i int) (dm, chk, dev string) {
	if h.pathsOK[i] {
		return "active", "ready", "running"
	}
	return "failed", "faulty", "running"
}

// mapsJSON follows multipath-tools 0.9.4's print.c JSON layout for
// `show maps json` (not recorded).
func (h *Host) mapsJSON() string {
	return "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": [{\n" + h.mapBody() + "   }]\n}\n"
}

// mapJSON is `show map NAME json`: the same object under "map".
func (h *Host) mapJSON() string {
	return "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"map\":{\n" + h.mapBody() + "   }\n}\n"
}

func (h *Host) mapBody() string {
	var b strings.Builder
	queueing := "-"
	if h.queueing {
		queueing = "queue"
	}
	active := 0
	for i := range paths {
		if h.pathsOK[i] {
			active++
		}
	}
	fmt.Fprintf(&b, "      \"name\" : \"lun0\",\n      \"uuid\" : %q,\n      \"sysfs\" : \"dm-0\",\n      \"failback\" : \"-\",\n      \"queueing\" : %q,\n      \"paths\" : %d,\n      \"write_prot\" : \"rw\",\n      \"dm_st\" : \"active\",\n      \"features\" : \"0\",\n      \"hwhandler\" : \"0\",\n      \"action\" : \"\",\n      \"path_faults\" : 0,\n      \"vend\" : \"QEMU\",\n      \"prod\" : \"QEMU HARDDISK\",\n      \"rev\" : \"2.5+\",\n      \"switch_grp\" : 0,\n      \"map_loads\" : 1,\n      \"total_q_time\" : 0,\n      \"q_timeouts\" : 0,\n      \"path_groups\": [",
		lunSerial, queueing, active)
	for i, p := range paths {
		dm, chk, dev := h.pathState(i)
		grp := "active"
		if i > 0 {
			b.WriteString(",")
			grp = "enabled"
		}
		fmt.Fprintf(&b, "{\n         \"selector\" : \"service-time 0\",\n         \"pri\" : 1,\n         \"dm_st\" : %q,\n         \"marginal_st\" : \"normal\",\n         \"group\" : %d,\n         \"paths\": [{\n            \"dev\" : %q,\n            \"dev_t\" : %q,\n            \"dm_st\" : %q,\n            \"dev_st\" : %q,\n            \"chk_st\" : %q,\n            \"checker\" : \"tur\",\n            \"pri\" : 1,\n            \"host_wwnn\" : \"[undef]\",\n            \"target_wwnn\" : \"[undef]\",\n            \"host_wwpn\" : \"[undef]\",\n            \"target_wwpn\" : \"[undef]\",\n            \"host_adapter\" : \"[undef]\",\n            \"lun_hex\" : \"0x0000000000000000\",\n            \"marginal_st\" : \"normal\"\n         }]\n      }",
			grp, i+1, p.dev, p.devT, dm, dev, chk)
	}
	b.WriteString("]\n")
	return b.String()
}

// pathsFormat renders `show paths format FMT`: a header row of wildcard
// names, then one row per path, columns padded to the widest cell.
func (h *Host) pathsFormat(format string) string {
	headers := map[byte]string{'d': "dev", 'D': "dev_t", 't': "dm_st", 'T': "chk_st", 'o': "dev_st", 'm': "multipath", 'i': "hcil", 'w': "uuid"}
	tokens := strings.Fields(format)
	cells := func(vals map[byte]string) []string {
		var r []string
		for _, t := range tokens {
			if len(t) == 2 && t[0] == '%' {
				r = append(r, vals[t[1]])
			} else {
				r = append(r, t)
			}
		}
		return r
	}
	rows := [][]string{cells(headers)}
	for i, p := range paths {
		dm, chk, dev := h.pathState(i)
		rows = append(rows, cells(map[byte]string{'d': p.dev, 'D': p.devT, 't': dm, 'T': chk, 'o': dev, 'm': "lun0", 'i': p.hcil, 'w': lunSerial}))
	}
	return alignRows(rows, " ")
}

// pathsRaw renders `show paths raw format FMT`: wildcards replaced in place,
// no header, no padding.
func (h *Host) pathsRaw(format string) string {
	var b strings.Builder
	for i, p := range paths {
		dm, chk, dev := h.pathState(i)
		vals := map[byte]string{'d': p.dev, 'D': p.devT, 't': dm, 'T': chk, 'o': dev, 'm': "lun0", 'i': p.hcil, 'w': lunSerial}
		for j := 0; j < len(format); j++ {
			if format[j] == '%' && j+1 < len(format) {
				b.WriteString(vals[format[j+1]])
				j++
				continue
			}
			b.WriteByte(format[j])
		}
		b.WriteString("\n")
	}
	return b.String()
}

func alignRows(rows [][]string, sep string) string {
	width := map[int]int{}
	for _, r := range rows {
		for i, v := range r {
			width[i] = max(width[i], len(v))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var cells []string
		for i, v := range r {
			if i < len(r)-1 {
				v += strings.Repeat(" ", width[i]-len(v))
			}
			cells = append(cells, v)
		}
		b.WriteString(strings.Join(cells, sep) + "\n")
	}
	return b.String()
}

// --- dmsetup ---------------------------------------------------------------

type dmDev struct {
	name, table, uuid string
	open              int
	minor             int
}

// dmDevices lists the host's device-mapper devices sorted by name.
func (h *Host) dmDevices() []dmDev {
	c := h.c
	out := []dmDev{{name: "lun0", uuid: "mpath-" + lunSerial, open: 1,
		table: fmt.Sprintf("0 %d multipath 0 0 2 1 service-time 0 1 2 8:0 1 1 service-time 0 1 2 8:16 1 1 ", c.opt.PVSize/sectorSize)}}
	if h.ls != nil {
		out = append(out, dmDev{name: dmName(c.opt.VG, "lvmlock"), open: 1,
			table: fmt.Sprintf("0 %d linear 253:0 %d", lvmlockSize/sectorSize, pvStartSectors)})
	}
	for name, d := range h.active {
		t := fmt.Sprintf("0 %d linear 253:0 %d", d.sectors, d.offset)
		if d.errTbl {
			t = fmt.Sprintf("0 %d error", d.sectors)
		}
		uuid := "LVM-" + strings.ReplaceAll(c.vgUUID, "-", "")
		if l := c.lvs[name]; l != nil {
			uuid += strings.ReplaceAll(l.uuid, "-", "")
		}
		out = append(out, dmDev{name: dmName(c.opt.VG, name), table: t, open: d.open, uuid: uuid})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	for i := range out {
		out[i].minor = i
	}
	return out
}

func (h *Host) lvByDM(name string) (string, *dmLV) {
	for lvName, d := range h.active {
		if dmName(h.c.opt.VG, lvName) == name {
			return lvName, d
		}
	}
	return "", nil
}

func (h *Host) dmsetup(a *args) reply {
	if len(a.pos) == 0 {
		return unsupported(append([]string{"dmsetup"}, a.argv...))
	}
	switch sub := a.pos[0]; {
	case sub == "table" && len(a.pos) == 1:
		var b strings.Builder
		for _, d := range h.dmDevices() {
			b.WriteString(d.name + ": " + d.table + "\n")
		}
		return reply{stdout: b.String()}
	case sub == "table" && len(a.pos) == 2:
		for _, d := range h.dmDevices() {
			if d.name == a.pos[1] {
				return reply{stdout: d.table + "\n"}
			}
		}
		return fail(1, "Device does not exist.\nCommand failed.\n")
	case sub == "wipe_table" && len(a.pos) >= 2:
		// In order, stopping at the first device that is not there (dmsetup's
		// _perform_command_for_all_repeatable_args).
		for _, name := range a.pos[1:] {
			_, d := h.lvByDM(name)
			if d == nil {
				h.pauseDomainsOnEIO()
				return fail(1, fmt.Sprintf("device-mapper: reload ioctl on %s  failed: No such device or address\nCommand failed.\n", name))
			}
			d.errTbl = true
		}
		h.pauseDomainsOnEIO()
		return reply{}
	case sub == "remove" && len(a.pos) == 2:
		name, d := h.lvByDM(a.pos[1])
		if d == nil {
			// Recorded.
			return fail(1, fmt.Sprintf("device-mapper: remove ioctl on %s  failed: No such device or address\nCommand failed.\n", a.pos[1]))
		}
		if d.open > 0 {
			return fail(1, fmt.Sprintf("device-mapper: remove ioctl on %s  failed: Device or resource busy\nCommand failed.\n", a.pos[1]))
		}
		delete(h.active, name)
		return reply{}
	case sub == "message" && len(a.pos) == 4 && a.pos[1] == "lun0" && a.pos[3] == "fail_if_no_path":
		h.queueing = false
		h.pauseDomainsOnEIO()
		return reply{}
	case sub == "info" && a.has("-c"):
		return h.dmInfo(a)
	}
	return unsupported(append([]string{"dmsetup"}, a.argv...))
}

var dmInfoHeads = map[string]string{"name": "Name", "major": "Maj", "minor": "Min", "attr": "Stat", "open": "Open", "segments": "Targ", "events": "Event", "uuid": "UUID"}

func (h *Host) dmInfo(a *args) reply {
	fields := strings.Split(a.flags["-o"], ",")
	if a.flags["-o"] == "" {
		fields = []string{"name", "major", "minor", "attr", "open", "segments", "events", "uuid"}
	}
	var header []string
	for _, f := range fields {
		if dmInfoHeads[f] == "" {
			return fail(1, fmt.Sprintf("Unrecognised field: %s\n", f))
		}
		header = append(header, dmInfoHeads[f])
	}
	var rows [][]string
	if !a.has("--noheadings") {
		rows = append(rows, header)
	}
	found := false
	for _, d := range h.dmDevices() {
		if len(a.pos) > 1 && d.name != a.pos[1] {
			continue
		}
		found = true
		vals := map[string]string{"name": d.name, "major": "253", "minor": fmt.Sprint(d.minor), "attr": "L--w",
			"open": fmt.Sprint(d.open), "segments": "1", "events": "0", "uuid": d.uuid}
		var r []string
		for _, f := range fields {
			r = append(r, vals[f])
		}
		rows = append(rows, r)
	}
	if len(a.pos) > 1 && !found {
		return fail(1, "Device does not exist.\nCommand failed.\n")
	}
	if sep, ok := a.flags["--separator"]; ok {
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(strings.Join(r, sep) + "\n")
		}
		return reply{stdout: b.String()}
	}
	return reply{stdout: alignRows(rows, " ")}
}

// --- systemctl -------------------------------------------------------------

func (h *Host) systemctl(a *args) reply {
	if len(a.pos) != 2 {
		return unsupported(append([]string{"systemctl"}, a.argv...))
	}
	verb, unit := a.pos[0], strings.TrimSuffix(a.pos[1], ".service")
	if _, known := h.daemons[unit]; !known {
		if verb == "is-active" {
			return reply{stdout: "inactive\n", code: 3}
		}
		return fail(5, fmt.Sprintf("Failed to %s %s.service: Unit %s.service not found.\n", verb, unit, unit))
	}
	switch verb {
	case "is-active":
		switch {
		case h.daemons[unit]:
			return reply{stdout: "active\n"}
		case h.crashed[unit]:
			return reply{stdout: "failed\n", code: 3}
		}
		return reply{stdout: "inactive\n", code: 3}
	case "start":
		h.daemons[unit], h.crashed[unit] = true, false
		return reply{}
	case "stop", "restart":
		// Recorded: lvmlockd and sanlock ignore SIGTERM while a lockspace
		// exists; the unit job hangs until systemd gives up.
		if (unit == "lvmlockd" || unit == "sanlock") && h.ls != nil && h.daemons[unit] {
			return reply{hang: true}
		}
		h.daemons[unit] = verb == "restart"
		h.crashed[unit] = false
		return reply{}
	}
	return unsupported(append([]string{"systemctl"}, a.argv...))
}

// --- virsh -----------------------------------------------------------------

// virshVerbs answers one virsh subcommand each; every one but list names a
// domain as its single argument.
var virshVerbs = map[string]func(h *Host, d *domain, a *args) reply{
	"domstate":   (*Host).virshDomstate,
	"domblklist": (*Host).virshDomblklist,
	"dumpxml":    (*Host).virshDumpxml,
	"start":      (*Host).virshStart,
	"suspend":    (*Host).virshSuspend,
	"resume":     (*Host).virshResume,
	"destroy":    (*Host).virshDestroy,
}

func (h *Host) virsh(a *args) reply {
	if !h.daemons["libvirtd"] {
		return fail(1, "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused\n")
	}
	if uri, ok := a.flags["-c"]; ok && uri != "qemu:///system" {
		return fail(1, "error: failed to connect to the hypervisor\nerror: no connection driver available for "+uri+"\n")
	}
	if len(a.pos) == 1 && a.pos[0] == "list" {
		return h.virshList(a)
	}
	if len(a.pos) != 2 || virshVerbs[a.pos[0]] == nil {
		return unsupported(append([]string{"virsh"}, a.argv...))
	}
	d := h.domains[a.pos[1]]
	if d == nil {
		return fail(1, fmt.Sprintf("error: failed to get domain '%s'\n", a.pos[1]))
	}
	return virshVerbs[a.pos[0]](h, d, a)
}

func (h *Host) virshList(a *args) reply {
	if a.has("--name") {
		var b strings.Builder
		for _, n := range h.domOrder {
			if h.domains[n].state != "shut off" || a.has("--all") {
				b.WriteString(n + "\n")
			}
		}
		return reply{stdout: b.String() + "\n"}
	}
	rows := [][]string{{"Id", "Name", "State"}}
	for _, n := range h.domOrder {
		d := h.domains[n]
		if d.state == "shut off" && !a.has("--all") {
			continue
		}
		id := "-"
		if d.state != "shut off" {
			id = fmt.Sprint(d.id)
		}
		rows = append(rows, []string{id, d.name, d.state})
	}
	return reply{stdout: virshTable(rows)}
}

func (h *Host) virshDomstate(d *domain, a *args) reply {
	if !a.has("--reason") {
		return reply{stdout: d.state + "\n\n"}
	}
	return reply{stdout: d.state + " (" + d.reason + ")\n\n"}
}

func (h *Host) virshDomblklist(d *domain, _ *args) reply {
	rows := [][]string{{"Target", "Source"}}
	for i, n := range d.disks {
		rows = append(rows, []string{"vd" + string(rune('a'+i)), "/dev/" + h.c.opt.VG + "/" + n})
	}
	return reply{stdout: virshTable(rows)}
}

// virshDumpxml prints the parts of a domain's XML the agent reads: its
// disks, each with the domain's error policy, as nova writes them.
func (h *Host) virshDumpxml(d *domain, _ *args) reply {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='kvm'>\n  <name>%s</name>\n  <devices>\n", d.name)
	for i, n := range d.disks {
		fmt.Fprintf(&b, "    <disk type='block' device='disk'>\n      <driver name='qemu' type='raw' cache='none' io='native' error_policy='%s' rerror_policy='%s'/>\n"+
			"      <source dev='/dev/%s/%s'/>\n      <target dev='vd%c' bus='virtio'/>\n    </disk>\n", d.errorPolicy, d.errorPolicy, h.c.opt.VG, n, 'a'+i)
	}
	b.WriteString("  </devices>\n</domain>\n")
	return reply{stdout: b.String()}
}

// virshStart opens the domain's disks, which must be active with a working
// table (a fenced LV's error table fails the start as a missing one would).
func (h *Host) virshStart(d *domain, _ *args) reply {
	if d.state != "shut off" {
		return fail(1, "error: Failed to start domain '"+d.name+"'\nerror: Requested operation is not valid: domain is already running\n")
	}
	for _, n := range d.disks {
		if dev := h.active[n]; dev == nil || dev.errTbl {
			return fail(1, fmt.Sprintf("error: Failed to start domain '%s'\nerror: Cannot access storage file '/dev/%s/%s': No such file or directory\n", d.name, h.c.opt.VG, n))
		}
	}
	for _, n := range d.disks {
		h.active[n].open++
	}
	h.c.domSeq++
	d.state, d.reason, d.id = "running", "booted", h.c.domSeq
	return reply{stdout: "Domain '" + d.name + "' started\n\n"}
}

func notRunning(verb string, d *domain) reply {
	return fail(1, "error: Failed to "+verb+" domain '"+d.name+"'\nerror: Requested operation is not valid: domain is not running\n")
}

func (h *Host) virshSuspend(d *domain, _ *args) reply {
	if d.state == "shut off" {
		return notRunning("suspend", d)
	}
	d.state, d.reason = "paused", "user"
	return reply{stdout: "Domain '" + d.name + "' suspended\n\n"}
}

// virshResume pauses the domain again at once if a disk still fails I/O,
// as qemu's rerror_policy=stop does.
func (h *Host) virshResume(d *domain, _ *args) reply {
	switch d.state {
	case "shut off":
		return notRunning("resume", d)
	case "running":
		return fail(1, "error: Failed to resume domain '"+d.name+"'\nerror: Requested operation is not valid: domain is already running\n")
	}
	d.state, d.reason = "running", "unpaused"
	h.pauseDomainsOnEIO()
	return reply{stdout: "Domain '" + d.name + "' resumed\n\n"}
}

func (h *Host) virshDestroy(d *domain, _ *args) reply {
	if d.state == "shut off" {
		return notRunning("destroy", d)
	}
	for _, n := range d.disks {
		if dev := h.active[n]; dev != nil && dev.open > 0 {
			dev.open--
		}
	}
	d.state, d.reason, d.id = "shut off", "destroyed", 0
	return reply{stdout: "Domain '" + d.name + "' destroyed\n\n"}
}

// virshTable prints virsh's table: header, a dash rule, rows, blank line.
func virshTable(rows [][]string) string {
	lines := strings.Split(strings.TrimSuffix(alignRows(rows, "   "), "\n"), "\n")
	var b strings.Builder
	b.WriteString(" " + lines[0] + "\n" + strings.Repeat("-", len(lines[0])+2) + "\n")
	for _, l := range lines[1:] {
		b.WriteString(" " + l + "\n")
	}
	return b.String() + "\n"
}

// dd writes to an LV's device (wiping a volume): it needs the LV active on
// this host with a working table; only of= matters to the simulation.
func (h *Host) dd(a *args) reply {
	var source, target string
	for _, op := range a.pos {
		if v, ok := strings.CutPrefix(op, "of="); ok {
			target = v
		}
		if v, ok := strings.CutPrefix(op, "if="); ok {
			source = v
		}
	}
	// Reading an LV (a clone's copy) needs it active here and readable.
	if name, ok := h.c.splitLV(source); ok && strings.HasPrefix(source, "/dev/") {
		switch dev := h.active[name]; {
		case dev == nil:
			return fail(1, fmt.Sprintf("dd: failed to open '%s': No such file or directory\n", source))
		case dev.errTbl || (h.pathsDown() && !h.queueing):
			return fail(1, fmt.Sprintf("dd: error reading '%s': Input/output error\n", source))
		}
	}
	name, ok := h.c.splitLV(target)
	if !ok {
		return unsupported(append([]string{"dd"}, a.argv...))
	}
	dev := h.active[name]
	switch {
	case dev == nil:
		return fail(1, fmt.Sprintf("dd: failed to open '%s': No such file or directory\n", target))
	case dev.errTbl || (h.pathsDown() && !h.queueing):
		return fail(1, fmt.Sprintf("dd: error writing '%s': Input/output error\n", target))
	case h.pathsDown():
		return reply{hang: true}
	}
	if h.c.dev != nil {
		// The real dd, on the loop devices behind the LVs.
		argv := []string{"dd"}
		for _, op := range a.pos {
			k, v, _ := strings.Cut(op, "=")
			if k == "if" || k == "of" {
				op = k + "=" + h.c.devPath(v)
			}
			argv = append(argv, op)
		}
		return reply{exec: argv}
	}
	return reply{}
}
