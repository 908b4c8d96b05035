package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Recorded lvm2 2.03.16 messages.
func (c *Cluster) msgStorageFailed() string {
	return "  VG " + c.opt.VG + " lock skipped: storage failed for sanlock leases\n"
}
func (c *Cluster) msgNotFound(vg string) string {
	return fmt.Sprintf("  Volume group %q not found\n  Cannot process volume group %s\n", vg, vg)
}
func (c *Cluster) msgNoLock() string { return "  Reading VG " + c.opt.VG + " without a lock.\n" }
func (c *Cluster) msgFailedLk() string {
	return "  Cannot access VG " + c.opt.VG + " due to failed lock.\n"
}

// access is the VG state as an LVM command on this host sees it.
type access int

const (
	accOK          access = iota
	accHang               // PV unreadable, I/O queued
	accUnreadable         // PV unreadable, I/O errors
	accKilledNoPV         // kill_vg set and PV unreadable
	accKilled             // kill_vg set, PV readable
	accNoDaemon           // lvmlockd not running
	accNoLockspace        // lockspace not started
	accStarting           // lockspace join in progress
	accDropped            // lvmlockd's lockspace, dropped under it by sanlock
)

func (h *Host) access() access {
	switch {
	case h.pathsDown() && h.ls != nil && h.ls.killVG:
		return accKilledNoPV
	case h.pathsDown() && h.queueing:
		return accHang
	case h.pathsDown():
		return accUnreadable
	case !h.daemons["lvmlockd"]:
		return accNoDaemon
	case h.ls == nil:
		return accNoLockspace
	case h.ls.killVG:
		return accKilled
	case h.ls.dropped:
		return accDropped
	case h.c.clock.Now().Before(h.ls.readyAt):
		return accStarting
	}
	return accOK
}

// lockRefusal is the reply of a command that needs the VG lock, or ok=false
// when it may go on.
func (h *Host) lockRefusal() (reply, bool) {
	c := h.c
	switch h.access() {
	case accHang:
		return reply{hang: true}, true
	case accUnreadable:
		return fail(5, c.msgNotFound(c.opt.VG)), true
	case accKilledNoPV:
		return fail(5, c.msgStorageFailed()+c.msgNotFound(c.opt.VG)), true
	case accNoDaemon:
		// Not recorded: lvm2 warns and then fails like a lockspace that is not started.
		return fail(5, "  WARNING: lvmlockd process is not running.\n"+c.msgFailedLk()), true
	case accNoLockspace:
		return fail(5, c.msgFailedLk()), true
	case accDropped:
		// lvmlockd's VGLK acquire fails in sanlock (lab journal:
		// "lock_san acquire error -28"); the command's output was not
		// recorded, its class was (LockspaceNotStarted, scenario
		// lease-loss-unheld).
		return fail(5, c.msgFailedLk()), true
	case accKilled:
		return fail(5, c.msgStorageFailed()+c.msgFailedLk()), true
	case accStarting:
		return fail(5, "  VG "+c.opt.VG+" lock skipped: lock start in progress\n"+c.msgFailedLk()), true
	}
	// The command took the VG lock and saw its current version.
	h.ls.vgVersion = h.c.vgVersion
	return reply{}, false
}

// readPrefix is the stderr of a command that reads the VG without needing a
// lock, or a full refusal when the PV cannot be read.
func (h *Host) readPrefix() (string, *reply) {
	c := h.c
	switch h.access() {
	case accHang:
		return "", &reply{hang: true}
	case accUnreadable:
		return "", &reply{stderr: c.msgNotFound(c.opt.VG), code: 5}
	case accKilledNoPV:
		return "", &reply{stderr: c.msgStorageFailed() + c.msgNotFound(c.opt.VG), code: 5}
	case accKilled:
		return c.msgStorageFailed() + c.msgNoLock(), nil
	case accNoDaemon, accNoLockspace, accStarting, accDropped:
		return c.msgNoLock(), nil
	}
	return "", nil
}

// --- reports ---------------------------------------------------------------

var (
	lvDefault = "lv_name,vg_name,lv_attr,lv_size,pool_lv,origin,data_percent,metadata_percent,move_pv,mirror_log,copy_percent,convert_lv"
	vgDefault = "vg_name,pv_count,lv_count,snap_count,vg_attr,vg_size,vg_free"
	aliases   = map[string]string{"lock_type": "vg_lock_type", "lock_args": "vg_lock_args", "name": "", "size": ""}
)

func fieldList(a *args, def, prefix string) []string {
	o, ok := a.flags["-o"]
	spec := def
	if ok {
		spec = ""
		for _, part := range strings.Split(o, ",") {
			if strings.HasPrefix(part, "+") {
				spec += "," + def + "," + strings.TrimPrefix(part, "+")
			} else {
				spec += "," + part
			}
		}
	}
	var out []string
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if al, ok := aliases[f]; ok && al != "" {
			f = al
		} else if ok {
			f = prefix + f
		}
		out = append(out, f)
	}
	return out
}

type row map[string]string

// jsonReport prints rows the way lvm's json report does (two-space indent,
// one row per line, keys in -o order).
func jsonReport(kind string, fields []string, rows []row) string {
	var b strings.Builder
	b.WriteString("  {\n      \"report\": [\n          {\n              \"" + kind + "\": [\n")
	for i, r := range rows {
		b.WriteString("                  {")
		for j, f := range fields {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q:%q", f, r[f])
		}
		b.WriteString("}")
		if i < len(rows)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("              ]\n          }\n      ]\n  }\n")
	return b.String()
}

// size prints bytes as lvm does: raw with --units b, else the largest unit
// with two decimals and "<" when rounding went up.
func size(a *args, bytes int64) string {
	if u := a.flags["--units"]; u == "b" || u == "B" {
		if a.has("--nosuffix") {
			return strconv.FormatInt(bytes, 10)
		}
		return strconv.FormatInt(bytes, 10) + "B"
	}
	units := []string{"k", "m", "g", "t"}
	unit, v := "k", float64(bytes)/1024
	for i := 1; i < len(units) && v >= 1024; i++ {
		unit, v = units[i], v/1024
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if back, _ := strconv.ParseFloat(s, 64); back > v {
		s = "<" + s
	}
	return s + unit
}

func (h *Host) report(a *args, kind string) reply {
	c := h.c
	def, prefix := lvDefault, "lv_"
	if kind == "vg" {
		def, prefix = vgDefault, "vg_"
	}
	fields := fieldList(a, def, prefix)
	for _, f := range fields {
		if columnHeads[f] == "" {
			return fail(5, fmt.Sprintf("  Unrecognised field: %s\n", f))
		}
	}
	// Targets are VG names or, for lvs, VG/LV names.
	only := map[string]bool{}
	for _, target := range a.pos {
		if name, ok := c.splitLV(target); ok && kind == "lv" {
			if c.lvs[name] == nil {
				return reply{stdout: jsonReport(kind, fields, nil), stderr: fmt.Sprintf("  Failed to find logical volume %q\n", target), code: 5}
			}
			only[name] = true
			continue
		}
		if target != c.opt.VG {
			return reply{stdout: jsonReport(kind, fields, nil), stderr: c.msgNotFound(target), code: 5}
		}
	}
	prefixErr, refusal := h.readPrefix()
	if refusal != nil {
		if !refusal.hang {
			refusal.stdout = jsonReport(kind, fields, nil)
		}
		return *refusal
	}
	var rows []row
	if kind == "vg" {
		rows = []row{h.vgRow(a)}
	} else {
		for _, name := range c.lvOrder {
			if len(only) > 0 && !only[name] {
				continue
			}
			rows = append(rows, h.lvRow(a, c.lvs[name]))
			if d := h.active[name]; d != nil && d.errTbl {
				prefixErr += fmt.Sprintf("  WARNING: Detected error segment type does not match expected type striped for %s/%s.\n", c.opt.VG, name)
			}
		}
		if a.has("-a") {
			rows = append(rows, h.lvmlockRow(a))
		}
	}
	if a.flags["--reportformat"] != "json" {
		return reply{stdout: plainReport(fields, rows), stderr: prefixErr}
	}
	return reply{stdout: jsonReport(kind, fields, rows), stderr: prefixErr}
}

// plainReport is the column form (no --reportformat json): a header, then
// left-aligned columns each as wide as its widest cell.
func plainReport(fields []string, rows []row) string {
	table := [][]string{{}}
	for _, f := range fields {
		table[0] = append(table[0], columnHeads[f])
	}
	for _, r := range rows {
		var line []string
		for _, f := range fields {
			line = append(line, r[f])
		}
		table = append(table, line)
	}
	width := make([]int, len(fields))
	for i, f := range fields {
		width[i] = columnMinWidth[f]
	}
	for _, line := range table {
		for i, v := range line {
			width[i] = max(width[i], len(v))
		}
	}
	var b strings.Builder
	for _, line := range table {
		b.WriteString(" ")
		for i, v := range line {
			b.WriteString(" " + v + strings.Repeat(" ", width[i]-len(v)))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// columnMinWidth are lvm's field widths wider than their heading (columns.h).
var columnMinWidth = map[string]int{"lv_name": 4, "data_percent": 6, "metadata_percent": 6}

var columnHeads = map[string]string{"lv_name": "LV", "vg_name": "VG", "lv_attr": "Attr", "lv_size": "LSize", "pool_lv": "Pool",
	"origin": "Origin", "data_percent": "Data%", "metadata_percent": "Meta%", "move_pv": "Move", "mirror_log": "Log",
	"copy_percent": "Cpy%Sync", "convert_lv": "Convert", "pv_count": "#PV", "lv_count": "#LV", "snap_count": "#SN",
	"vg_attr": "Attr", "vg_size": "VSize", "vg_free": "VFree", "vg_uuid": "VG UUID", "vg_extent_size": "Ext",
	"vg_lock_type": "LockType", "vg_lock_args": "VLockArgs", "lv_uuid": "LV UUID", "lv_lockargs": "LLockArgs",
	"lv_active_locally": "ActLocal", "lv_active_exclusively": "ActExcl", "lv_active_remotely": "ActRemote",
	"lv_device_open": "DevOpen", "lv_tags": "LV Tags", "lv_active": "Active", "lv_path": "Path", "lv_dm_path": "DMPath"}

func (h *Host) vgRow(a *args) row {
	c := h.c
	total := c.totalExtents() * c.opt.ExtentSize
	return row{"vg_name": c.opt.VG, "vg_uuid": c.vgUUID, "pv_count": "1", "lv_count": strconv.Itoa(len(c.lvs)),
		"snap_count": "0", "vg_attr": "wz--ns", "vg_size": size(a, total), "vg_free": size(a, c.freeExtents()*c.opt.ExtentSize),
		"vg_extent_size": size(a, c.opt.ExtentSize), "vg_lock_type": "sanlock", "vg_lock_args": "1.0.0:lvmlock"}
}

func (h *Host) lvRow(a *args, l *lv) row {
	c := h.c
	r := row{"lv_name": l.name, "vg_name": c.opt.VG, "lv_uuid": l.uuid, "lv_size": size(a, l.extents*c.opt.ExtentSize),
		"lv_lockargs": fmt.Sprintf("1.0.0:%d", l.lockOffset), "lv_attr": "-wi-------",
		"lv_path": "/dev/" + c.opt.VG + "/" + l.name, "lv_dm_path": "/dev/mapper/" + dmName(c.opt.VG, l.name), "origin": l.origin,
		"lv_tags": l.tag}
	kind := "-"
	switch {
	case l.origin != "":
		kind = "s"
	case len(c.snapshotsOf(l.name)) > 0:
		kind = "o"
	}
	r["lv_attr"] = kind + "wi-------"
	if d := h.active[l.name]; d != nil {
		// lvs is not lock-aware: any local activation reads "active exclusively".
		r["lv_attr"] = kind + "wi-a-----"
		if d.open > 0 {
			r["lv_attr"], r["lv_device_open"] = kind+"wi-ao----", "open"
		}
		r["lv_active"], r["lv_active_locally"], r["lv_active_exclusively"] = "active", "active locally", "active exclusively"
	}
	return r
}

func (h *Host) lvmlockRow(a *args) row {
	r := row{"lv_name": "[lvmlock]", "vg_name": h.c.opt.VG, "lv_size": size(a, lvmlockSize), "lv_attr": "-wi-------"}
	if h.ls != nil {
		r["lv_attr"], r["lv_active_locally"], r["lv_active_exclusively"], r["lv_device_open"] = "-wi-ao----", "active locally", "active exclusively", "open"
	}
	return r
}

func (h *Host) vgs(a *args) reply { return h.report(a, "vg") }
func (h *Host) lvs(a *args) reply { return h.report(a, "lv") }

// --- extents ---------------------------------------------------------------

func (c *Cluster) totalExtents() int64 {
	return (c.opt.PVSize - pvStartSectors*sectorSize) / c.opt.ExtentSize
}

func (c *Cluster) lvmlockExtents() int64 { return lvmlockSize / c.opt.ExtentSize }

func (c *Cluster) freeExtents() int64 {
	used := c.lvmlockExtents()
	for _, l := range c.lvs {
		used += l.extents
	}
	return c.totalExtents() - used
}

// allocate finds the first free run of n extents.
func (c *Cluster) allocate(n int64) (int64, bool) {
	type seg struct{ start, n int64 }
	segs := []seg{{0, c.lvmlockExtents()}}
	for _, l := range c.lvs {
		segs = append(segs, seg{l.segStart, l.extents})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].start < segs[j].start })
	at := int64(0)
	for _, s := range segs {
		if s.start-at >= n {
			return at, true
		}
		at = max(at, s.start+s.n)
	}
	return at, c.totalExtents()-at >= n
}

func (c *Cluster) nextLockOffset() int64 {
	used := map[int64]bool{}
	for _, l := range c.lvs {
		used[l.lockOffset] = true
	}
	off := int64(lockArgsBase)
	for used[off] {
		off += leaseAlign
	}
	return off
}

// parseSize reads an lvm size: a number with an optional unit (b, s, k, m,
// g, t; default m) and an optional leading "+".
func parseSize(s string) (bytes int64, relative bool, err error) {
	if strings.HasPrefix(s, "+") {
		relative, s = true, s[1:]
	}
	mult := int64(1 << 20)
	if n := len(s); n > 0 {
		switch strings.ToLower(s[n-1:]) {
		case "b":
			mult, s = 1, s[:n-1]
		case "s":
			mult, s = sectorSize, s[:n-1]
		case "k":
			mult, s = 1<<10, s[:n-1]
		case "m":
			mult, s = 1<<20, s[:n-1]
		case "g":
			mult, s = 1<<30, s[:n-1]
		case "t":
			mult, s = 1<<40, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, false, fmt.Errorf("invalid size")
	}
	return v * mult, relative, nil
}

func dmName(vg, lvName string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lvName, "-", "--")
}

// splitLV takes "VG/LV" (or a /dev path) and returns the LV name if the VG is ours.
func (c *Cluster) splitLV(arg string) (string, bool) {
	arg = strings.TrimPrefix(arg, "/dev/")
	vg, name, ok := strings.Cut(arg, "/")
	return name, ok && vg == c.opt.VG && name != ""
}

// --- vgchange --------------------------------------------------------------

func (h *Host) vgchange(a *args) reply {
	c := h.c
	if len(a.pos) != 1 || (a.has("--lock-start") == a.has("--lock-stop")) {
		return unsupported(append([]string{"vgchange"}, a.argv...))
	}
	if vg := a.pos[0]; vg != c.opt.VG {
		return fail(5, c.msgNotFound(vg))
	}
	if a.has("--lock-stop") {
		return h.lockStop()
	}
	return h.lockStart(a.flags["--lock-opt"] == "nowait")
}

func (h *Host) lockStart(nowait bool) reply {
	c := h.c
	vg := c.opt.VG
	const skipping = "  Skipping global lock: lockspace not found or started\n"
	const waiting = "  Starting locking.  Waiting for sanlock may take 20 sec to 3 min...\n"
	switch {
	case h.ls != nil && h.ls.killVG:
		if h.pathsDown() {
			return fail(5, "  Skipping global lock: storage failed for sanlock leases\n"+c.msgNotFound(vg))
		}
		// Not recorded: the killed lockspace must be dropped first.
		return fail(5, "  Skipping global lock: storage failed for sanlock leases\n  VG "+vg+" start failed: lockspace is killed\n")
	case h.ls != nil && h.ls.dropped:
		// lvmlockd still has it: EEXIST, which lvm2 takes as started.
		return reply{}
	case h.ls != nil:
		return reply{stdout: waiting, wait: h.ls.readyAt.Sub(c.clock.Now())}
	case !h.daemons["sanlock"]:
		return fail(5, skipping+"  VG "+vg+" start failed: lock manager sanlock is not running\n")
	case !h.daemons["lvmlockd"]:
		return fail(5, "  WARNING: lvmlockd process is not running.\n"+c.msgFailedLk())
	case h.pathsDown():
		if h.queueing {
			return reply{hang: true}
		}
		return fail(5, c.msgNotFound(vg))
	case h.leaseFail:
		// Not recorded: the delta lease cannot be acquired.
		return fail(5, skipping+"  VG "+vg+" start failed: -5\n")
	}
	h.ls = &lockspace{readyAt: c.clock.Now().Add(c.opt.JoinTime)}
	h.forgetOrphans()
	out := "  VG " + vg + " starting sanlock lockspace\n"
	if nowait {
		return reply{stdout: out + "  Starting locking.  VG can only be read until locks are ready.\n", stderr: skipping}
	}
	return reply{stdout: out + waiting, stderr: skipping, wait: c.opt.JoinTime}
}

func (h *Host) lockStop() reply {
	if h.ls == nil {
		return reply{}
	}
	if len(h.active) > 0 {
		return fail(5, "  VG "+h.c.opt.VG+" stop failed: LVs must first be deactivated\n")
	}
	h.dropLocks()
	return reply{}
}

// --- lvchange --------------------------------------------------------------

func (h *Host) lvchange(a *args) reply {
	c := h.c
	if len(a.pos) == 0 {
		return fail(3, "  No command with matching syntax recognised.\n")
	}
	if a.has("--refresh") {
		return h.refresh(a)
	}
	mode, ok := a.flags["-a"]
	if !ok {
		return unsupported(append([]string{"lvchange"}, a.argv...))
	}
	switch mode {
	case "ey", "y":
		mode = modeEx // a plain -ay on a shared VG is exclusive
	case "sy":
		mode = modeSh
	case "n", "ln":
		return h.deactivate(a.pos)
	default:
		return fail(3, fmt.Sprintf("  Invalid argument for --activate: %s\n", mode))
	}
	if r, refused := h.lockRefusal(); refused {
		return r
	}
	// Batch semantics: each LV independently; the exit code reports any failure.
	var out reply
	for _, arg := range a.pos {
		name, ok := c.splitLV(arg)
		l := c.lvs[name]
		if !ok || l == nil {
			out.stderr += fmt.Sprintf("  Failed to find logical volume %q\n", arg)
			out.code = 5
			continue
		}
		if l.origin != "" {
			out.stderr += c.msgSnapshotChange(l)
			out.code = 5
			continue
		}
		lvMode := mode
		if len(c.snapshotsOf(name)) > 0 {
			lvMode = modeEx // lvm2 exits 0 but keeps an origin exclusive
		}
		// --lockopt skiplv activates without the LV lock (lvmlockd(8)):
		// what an operator's manual activation leaves behind.
		if a.flags["--lock-opt"] != "skiplv" && !h.acquire(l, lvMode) {
			out.stderr += fmt.Sprintf("  LV locked by other host: %s/%s\n  Failed to lock logical volume %s/%s.\n", c.opt.VG, name, c.opt.VG, name)
			out.code = 5
			continue
		}
		if h.active[name] == nil {
			h.active[name] = &dmLV{sectors: l.extents * c.opt.ExtentSize / sectorSize, offset: pvStartSectors + l.segStart*c.opt.ExtentSize/sectorSize}
		}
		h.followOrigin(name)
	}
	return out
}

// acquire takes or converts this host's lock on l. Holders whose lease has
// expired no longer count, even if they still believe they hold it.
func (h *Host) acquire(l *lv, mode string) bool {
	for _, m := range h.rivals(l) {
		if mode == modeEx || m == modeEx {
			return false
		}
	}
	// sanlock bumps the lease version on every acquire or conversion.
	if l.holders[h.spec.Name] != mode {
		l.lver++
	}
	l.holders[h.spec.Name] = mode
	h.everLocked[l.uuid] = true
	return true
}

func (h *Host) deactivate(targets []string) reply {
	c := h.c
	prefix, refusal := h.readPrefix()
	if refusal != nil {
		return *refusal
	}
	out := reply{stderr: prefix}
	locked := h.access() == accOK
	for _, arg := range targets {
		name, ok := c.splitLV(arg)
		l := c.lvs[name]
		if !ok || l == nil {
			out.stderr += fmt.Sprintf("  Failed to find logical volume %q\n", arg)
			out.code = 5
			continue
		}
		if l.origin != "" {
			out.stderr += c.msgSnapshotChange(l) // lab, lvchange -an too
			out.code = 5
			continue
		}
		dev := h.active[name]
		if dev != nil && dev.open > 0 {
			out.stderr += fmt.Sprintf("  Logical volume %s/%s in use.\n", c.opt.VG, name)
			out.code = 5
			continue
		}
		delete(h.active, name)
		h.followOrigin(name)
		switch {
		case locked:
			delete(l.holders, h.spec.Name)
		case dev != nil && h.ls == nil:
			out.stderr += fmt.Sprintf("  LV %s/%s lock failed: lockspace is inactive\n  Failed to unlock logical volume %s/%s.\n", c.opt.VG, name, c.opt.VG, name)
		}
	}
	return out
}

// msgSnapshotChange is lvchange's answer for a COW snapshot: it changes
// with its origin, and the prompt gets no answer.
func (c *Cluster) msgSnapshotChange(snap *lv) string {
	return fmt.Sprintf("  Change of snapshot %s/%s will also change its origin %s/%s. Proceed? [y/n]: [n]\n  Logical volume %s/%s not changed.\n",
		c.opt.VG, snap.name, c.opt.VG, snap.origin, c.opt.VG, snap.name)
}

func (h *Host) refresh(a *args) reply {
	c := h.c
	// A refresh needs no VG lock, but it reads the metadata: without a
	// readable PV it fails (lab, no paths and no_path_retry fail, inside a
	// recovery: "Volume group "vol" not found").
	if _, refused := h.readPrefix(); refused != nil {
		return *refused
	}
	for _, arg := range a.pos {
		name, ok := c.splitLV(arg)
		l := c.lvs[name]
		if !ok || l == nil {
			return fail(5, fmt.Sprintf("  Failed to find logical volume %q\n", arg))
		}
		// A refresh reloads the table from the metadata, also over the
		// error target a fence left (seen in the lab).
		if dev := h.active[name]; dev != nil {
			dev.sectors, dev.errTbl = l.extents*c.opt.ExtentSize/sectorSize, false
		}
	}
	return reply{}
}

// --- lvcreate / lvremove / lvextend ----------------------------------------

func (h *Host) lvcreate(a *args) reply {
	c := h.c
	name, sz := a.flags["-n"], a.flags["-L"]
	if name == "" || sz == "" || len(a.pos) != 1 {
		return unsupported(append([]string{"lvcreate"}, a.argv...))
	}
	bytes, _, err := parseSize(sz)
	if err != nil {
		return fail(3, fmt.Sprintf("  Invalid argument for --size: %s\n", sz))
	}
	if a.has("-s") {
		return h.lvcreateSnapshot(a, name, bytes)
	}
	if a.pos[0] != c.opt.VG {
		return fail(5, c.msgNotFound(a.pos[0]))
	}
	if h.access() == accUnreadable && h.ls != nil {
		// lvcreate takes the VG lock before it reads the PV: while
		// lvmlockd has the lockspace, sanlock cannot write the lease
		// (lab, no_path_retry fail, the lockspace alive or gone from
		// sanlock with nothing held: ELMERR). Once the fence's drop took
		// it from lvmlockd too, the read fails first (lab, chaos-154:
		// "Volume group "vol" not found"), as below.
		return fail(5, "  VG "+c.opt.VG+" lock failed: error -221\n")
	}
	if r, refused := h.lockRefusal(); refused {
		return r
	}
	if c.lvs[name] != nil {
		return fail(5, fmt.Sprintf("  Logical Volume %q already exists in volume group %q\n", name, c.opt.VG))
	}
	n := (bytes + c.opt.ExtentSize - 1) / c.opt.ExtentSize
	start, ok := c.allocate(n)
	if !ok || n > c.freeExtents() {
		return fail(5, fmt.Sprintf("  Volume group %q has insufficient free space (%d extents): %d required.\n", c.opt.VG, c.freeExtents(), n))
	}
	l := &lv{name: name, uuid: c.newUUID(), extents: n, segStart: start, lockOffset: c.nextLockOffset(), holders: map[string]string{},
		tag: a.flags["--addtag"]}
	if c.dev != nil {
		if err := c.attachDevice(l, nil); err != nil {
			return fail(5, "  sim: backing device: "+err.Error()+"\n")
		}
	}
	c.lvs[name] = l
	c.lvOrder = append(c.lvOrder, name)
	h.bumpVG(2) // recorded: three lvcreates took the VG lock from 0 to 6
	sort.Strings(c.lvOrder)
	var out reply
	if a.flags["-a"] == "n" {
		// Recorded with and without -Zn: an LV that is not activated is not zeroed.
		out.stderr = fmt.Sprintf("  WARNING: Logical volume %s/%s not zeroed.\n", c.opt.VG, name)
	} else {
		h.acquire(l, modeEx)
		h.active[name] = &dmLV{sectors: n * c.opt.ExtentSize / sectorSize, offset: pvStartSectors + start*c.opt.ExtentSize/sectorSize}
	}
	out.stdout = fmt.Sprintf("  Logical volume %q created.\n", name)
	return out
}

func (h *Host) lvremove(a *args) reply {
	c := h.c
	if len(a.pos) == 0 {
		return fail(3, "  Please enter one or more logical volume paths.\n")
	}
	if r, refused := h.lockRefusal(); refused {
		return r
	}
	var out reply
	for _, arg := range a.pos {
		name, ok := c.splitLV(arg)
		l := c.lvs[name]
		if !ok || l == nil {
			out.stderr += fmt.Sprintf("  Failed to find logical volume %q\n", arg)
			out.code = 5
			continue
		}
		if dev := h.active[name]; dev != nil && dev.open > 0 {
			out.stderr += fmt.Sprintf("  Logical volume %s/%s in use.\n", c.opt.VG, name)
			out.code = 5
			continue
		}
		// A snapshot has no lock to take: lvmlockd lets any host remove it.
		if l.origin == "" && !h.acquire(l, modeEx) {
			out.stderr += fmt.Sprintf("  LV locked by other host: %s/%s\n", c.opt.VG, name)
			out.code = 5
			continue
		}
		for _, gone := range append(c.snapshotsOf(name), name) {
			for _, host := range c.hosts {
				delete(host.active, gone)
			}
			c.detachDevice(c.lvs[gone])
			delete(h.everLocked, c.lvs[gone].uuid)
			delete(c.lvs, gone)
			c.lvOrder = removeString(c.lvOrder, gone)
			h.bumpVG(2)
			out.stdout += fmt.Sprintf("  Logical volume %q successfully removed.\n", gone)
		}
	}
	return out
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func (h *Host) lvextend(a *args) reply {
	c := h.c
	if len(a.pos) != 1 || a.flags["-L"] == "" {
		return unsupported(append([]string{"lvextend"}, a.argv...))
	}
	name, ok := c.splitLV(a.pos[0])
	l := c.lvs[name]
	if !ok || l == nil {
		return fail(5, fmt.Sprintf("  Failed to find logical volume %q\n", a.pos[0]))
	}
	bytes, rel, err := parseSize(a.flags["-L"])
	if err != nil {
		return fail(3, fmt.Sprintf("  Invalid argument for --size: %s\n", a.flags["-L"]))
	}
	if r, refused := h.lockRefusal(); refused {
		return r
	}
	// lvextend needs the LV lock ex, or sh with shupdate: a holder elsewhere
	// in a conflicting mode refuses it.
	shupdate := strings.Contains(a.flags["--lock-opt"], "shupdate")
	for _, m := range h.rivals(l) {
		if !shupdate || m == modeEx {
			return fail(5, fmt.Sprintf("  LV locked by other host: %s/%s\n", c.opt.VG, name))
		}
	}
	n := (bytes + c.opt.ExtentSize - 1) / c.opt.ExtentSize
	if rel {
		n += l.extents
	}
	if n <= l.extents {
		return fail(5, fmt.Sprintf("  New size (%d extents) matches existing size (%d extents).\n", n, l.extents))
	}
	if n-l.extents > c.freeExtents() {
		return fail(5, fmt.Sprintf("  Insufficient free space: %d extents needed, but only %d available\n", n-l.extents, c.freeExtents()))
	}
	old := l.extents
	// Extents move to a fresh contiguous run so the simulated table stays linear.
	l.extents = 0
	start, fits := c.allocate(n)
	if !fits {
		l.extents = old
		return fail(5, fmt.Sprintf("  Insufficient suitable allocatable extents for logical volume %s\n", name))
	}
	if err := c.resizeDevice(l, n*c.opt.ExtentSize); err != nil {
		l.extents = old
		return fail(5, "  sim: backing device: "+err.Error()+"\n")
	}
	l.segStart, l.extents = start, n
	h.bumpVG(2)
	if dev := h.active[name]; dev != nil {
		dev.sectors, dev.offset = n*c.opt.ExtentSize/sectorSize, pvStartSectors+start*c.opt.ExtentSize/sectorSize
	}
	mib := func(e int64) string { return fmt.Sprintf("%.2f MiB", float64(e*c.opt.ExtentSize)/(1<<20)) }
	return reply{stdout: fmt.Sprintf("  Size of logical volume %s/%s changed from %s (%d extents) to %s (%d extents).\n  Logical volume %s/%s successfully resized.\n",
		c.opt.VG, name, mib(old), old, mib(n), n, c.opt.VG, name)}
}

// bumpVG records a VG metadata change by h on the VG lock's version.
func (h *Host) bumpVG(n int) {
	h.c.vgVersion += n
	h.ls.vgVersion = h.c.vgVersion
}
