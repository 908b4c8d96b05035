// Package doctor is the preflight check of a host before it joins the
// shared VG: each check passes, warns or fails with a fix hint. Every fact
// is read through the runner or from files under a root directory, so the
// checks run unchanged against recorded outputs and fixture trees.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
)

// Status is a check's outcome.
type Status string

const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one line of the preflight table.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Env says where to look.
type Env struct {
	Root           string // "/" on a live host
	Runner         run.Runner
	Timeout        time.Duration // per command
	VolumeGroups   []string
	MultipathAlias string
}

// facts are read once and shared by the checks.
type facts struct {
	env         Env
	lvmConf     []byte
	lvmLocal    []byte
	status      *sanlock.Status
	statusErr   error
	active      map[string]string // unit -> systemctl is-active answer
	lvmVersion  hostcfg.LVMVersion
	versionErr  error
	killCommand string
}

// Run runs every check in the order of the table.
func Run(ctx context.Context, env Env) []Check {
	f := gather(ctx, env)
	checks := []Check{
		f.useLvmlockd(),
		f.hostID(),
		f.lvmDevices(ctx),
		f.multipathPaths(ctx),
		f.daemon("sanlock", "systemctl enable --now sanlock"),
		f.daemon("lvmlockd", "systemctl enable --now lvmlockd"),
		f.wdmd(),
		f.fencing(),
	}
	for _, vg := range env.VolumeGroups {
		checks = append(checks, f.lockspace(vg))
	}
	checks = append(checks, f.clock(ctx), f.iscsiInitiator(), f.killCommandSupport(), f.timeouts())
	return checks
}

// Failed reports whether any check failed.
func Failed(checks []Check) bool {
	for _, c := range checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// WriteTable prints the checks for a terminal.
func WriteTable(w io.Writer, checks []Check) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL\tFIX")
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, strings.ToUpper(string(c.Status)), c.Detail, c.Fix)
	}
	return tw.Flush()
}

// WriteJSON prints the checks as a JSON array.
func WriteJSON(w io.Writer, checks []Check) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(checks)
}

func gather(ctx context.Context, env Env) *facts {
	f := &facts{env: env, active: map[string]string{}}
	f.lvmConf, _ = os.ReadFile(f.path("/etc/lvm/lvm.conf"))
	f.lvmLocal, _ = os.ReadFile(f.path("/etc/lvm/lvmlocal.conf"))
	f.killCommand, _ = hostcfg.GetLVM(f.lvmConf, "global", "lvmlockctl_kill_command")
	f.status, f.statusErr = sanlock.New(env.Runner, env.Timeout).Status(ctx)
	for _, unit := range []string{"sanlock", "lvmlockd", "wdmd"} {
		// is-active exits 3 for inactive or failed; stdout has the answer.
		res, _ := f.run(ctx, "systemctl", "is-active", unit)
		f.active[unit] = strings.TrimSpace(string(res.Stdout))
	}
	res, err := f.run(ctx, "lvm", "version")
	if err == nil {
		f.lvmVersion, err = hostcfg.ParseLVMVersion(res.Stdout)
	}
	f.versionErr = err
	return f
}

func (f *facts) path(p string) string { return filepath.Join(f.env.Root, p) }

func (f *facts) run(ctx context.Context, argv ...string) (run.Result, error) {
	return f.env.Runner.Run(ctx, run.Cmd{Argv: argv, Timeout: f.env.Timeout})
}

func (f *facts) useLvmlockd() Check {
	c := Check{Name: "use_lvmlockd"}
	v, ok := hostcfg.GetLVM(f.lvmConf, "global", "use_lvmlockd")
	if ok && v == "1" {
		return pass(c, "global/use_lvmlockd = 1 in /etc/lvm/lvm.conf")
	}
	return fail(c, fmt.Sprintf("global/use_lvmlockd is %s", orUnset(v, ok)), "aos-agent install (sets use_lvmlockd = 1)")
}

func (f *facts) hostID() Check {
	c := Check{Name: "host_id"}
	v, ok := hostcfg.GetLVM(f.lvmLocal, "local", "host_id")
	n, err := strconv.Atoi(v)
	if ok && err == nil && n >= 1 && n <= 2000 {
		return pass(c, "local/host_id = "+v)
	}
	return fail(c, "local/host_id in /etc/lvm/lvmlocal.conf is "+orUnset(v, ok)+", must be 1..2000 and unique per host",
		"aos-agent install --host-id N")
}

// lvmDevices asks LVM which device it uses for each PV of the VGs: the
// multipath map, never one of its sd* paths (a filter or devices file that
// accepts the paths lets LVM write through a single path).
func (f *facts) lvmDevices(ctx context.Context) Check {
	c := Check{Name: "lvm_devices"}
	res, err := f.run(ctx, "pvs", "--reportformat", "json", "-o", "pv_name,vg_name")
	if err != nil {
		return fail(c, "pvs failed: "+oneLine(err), "fix LVM first: run pvs by hand")
	}
	var rep struct {
		Report []struct {
			PV []struct {
				Name string `json:"pv_name"`
				VG   string `json:"vg_name"`
			} `json:"pv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(res.Stdout, &rep); err != nil {
		return fail(c, "pvs output: "+err.Error(), "")
	}
	want := map[string]bool{}
	for _, vg := range f.env.VolumeGroups {
		want[vg] = true
	}
	var bad, good []string
	for _, r := range rep.Report {
		for _, pv := range r.PV {
			if !want[pv.VG] {
				continue
			}
			if strings.HasPrefix(pv.Name, "/dev/mapper/") || strings.HasPrefix(pv.Name, "/dev/dm-") {
				good = append(good, pv.Name)
			} else {
				bad = append(bad, pv.VG+" on "+pv.Name)
			}
		}
	}
	switch {
	case len(bad) > 0:
		return fail(c, "LVM uses a multipath component path: "+strings.Join(bad, ", "),
			"accept only /dev/mapper/"+f.env.MultipathAlias+" in devices/filter or the devices file (lvmdevices --adddev), reject /dev/sd*")
	case len(good) == 0:
		return warn(c, "no PV of "+strings.Join(f.env.VolumeGroups, ",")+" visible", "check the LUN is attached (iscsiadm -m session, multipath -ll)")
	}
	return pass(c, "PVs on "+strings.Join(good, ", "))
}

func (f *facts) multipathPaths(ctx context.Context) Check {
	c := Check{Name: "multipath_paths"}
	if f.env.MultipathAlias == "" {
		return warn(c, "lvm.multipath_alias not set in aos-agent.conf: a fence turns queueing off on every multipath map of the host (a boot-from-SAN root too)", "set lvm.multipath_alias and run aos-agent install --wwid")
	}
	maps, err := multipath.New(f.env.Runner, f.env.Timeout).Maps(ctx)
	if err != nil {
		hint := "check multipathd: multipathd show maps"
		if errors.Is(err, multipath.ErrNotRunning) {
			hint = "systemctl enable --now multipathd"
		}
		return fail(c, "multipathd: "+oneLine(err), hint)
	}
	var m *multipath.Map
	for i := range maps {
		if maps[i].Name == f.env.MultipathAlias {
			m = &maps[i]
		}
	}
	if m == nil {
		return fail(c, "no multipath map "+f.env.MultipathAlias, "aos-agent install --wwid WWID writes the alias; check the LUN is logged in (iscsiadm -m session)")
	}
	n, total := len(m.ActivePaths()), len(m.Paths())
	detail := fmt.Sprintf("map %s: %d of %d paths active", f.env.MultipathAlias, n, total)
	switch {
	case n == 0:
		return fail(c, detail, "restore the SAN paths (iscsiadm -m session -R, check the fabric)")
	case n < 2:
		return warn(c, detail, "one path is a single point of failure: add or repair the second path")
	}
	return pass(c, detail)
}

func (f *facts) daemon(unit, fix string) Check {
	c := Check{Name: unit + "_running"}
	if s := f.active[unit]; s != "active" {
		return fail(c, unit+".service is "+f.unitState(unit), fix)
	}
	return pass(c, unit+".service active")
}

// unitState is systemctl's answer, or says there was none (no systemd).
func (f *facts) unitState(unit string) string {
	if s := f.active[unit]; s != "" {
		return s
	}
	return "unknown (systemctl is-active gave no answer)"
}

func (f *facts) wdmd() Check {
	c := Check{Name: "wdmd_running"}
	if s := f.active["wdmd"]; s != "active" {
		return warn(c, "wdmd.service is "+f.unitState("wdmd")+" (needed for watchdog fencing)",
			"load a watchdog driver, set enabled=1 in /etc/default/wdmd; Debian's wdmd.service then fails in ExecStartPre (it runs the SysV script): clear ExecStartPre= in a drop-in")
	}
	return pass(c, "wdmd.service active")
}

// fencing: a host that lost its lease must lose its LVs before another
// host takes them. Debian's default (-w 0, no kill command) let a second
// host activate an LV still active on the failed host, on real guests.
func (f *facts) fencing() Check {
	c := Check{Name: "fencing"}
	watchdog := f.status != nil && f.status.Daemon.Int("use_watchdog") == 1
	_, devErr := os.Stat(f.path("/dev/watchdog"))
	wd := watchdog && f.active["wdmd"] == "active" && devErr == nil
	kill := f.killCommand != ""
	if kill {
		if exe := strings.Fields(f.killCommand); len(exe) > 0 {
			if _, err := os.Stat(f.path(exe[0])); err != nil {
				kill = false
			}
		}
	}
	switch {
	case wd && kill:
		return pass(c, "sanlock watchdog (use_watchdog=1, wdmd, /dev/watchdog) and lvmlockctl_kill_command "+f.killCommand)
	case wd:
		return pass(c, "sanlock watchdog (use_watchdog=1, wdmd, /dev/watchdog)")
	case kill:
		return pass(c, "lvmlockctl_kill_command "+f.killCommand)
	}
	var why []string
	if f.statusErr != nil {
		why = append(why, "sanlock status: "+oneLine(f.statusErr))
	} else if !watchdog {
		why = append(why, "sanlock runs with -w 0")
	}
	if watchdog && f.active["wdmd"] != "active" {
		why = append(why, "wdmd not active")
	}
	if watchdog && devErr != nil {
		why = append(why, "no /dev/watchdog")
	}
	if f.killCommand == "" {
		why = append(why, "lvmlockctl_kill_command empty")
	} else {
		why = append(why, "kill command "+f.killCommand+" not executable")
	}
	return fail(c, "no fencing: "+strings.Join(why, ", "),
		"aos-agent install (sets lvmlockctl_kill_command), or sanlock -w 1 with wdmd and a watchdog driver")
}

func (f *facts) lockspace(vg string) Check {
	c := Check{Name: "lockspace_" + vg}
	if f.statusErr != nil {
		return fail(c, "sanlock status: "+oneLine(f.statusErr), "systemctl start sanlock")
	}
	ls := f.status.Lockspace(sanlock.LockspacePrefix + vg)
	switch {
	case ls == nil:
		return fail(c, "VG "+vg+" lockspace not started", "systemctl start aos-agent-lockstart (vgchange --lock-start "+vg+")")
	case ls.Pending != "":
		return warn(c, "VG "+vg+" lockspace "+ls.Pending+" pending", "wait: joining takes 20 s to minutes after an unclean shutdown")
	}
	return pass(c, fmt.Sprintf("VG %s lockspace joined as host_id %d", vg, ls.HostID))
}

func (f *facts) clock(ctx context.Context) Check {
	c := Check{Name: "clock_sync"}
	res, err := f.run(ctx, "timedatectl", "show", "-p", "NTPSynchronized", "--value")
	if err != nil {
		return warn(c, "timedatectl: "+oneLine(err), "install and enable an NTP client (systemd-timesyncd or chrony)")
	}
	if v := strings.TrimSpace(string(res.Stdout)); v != "yes" {
		return fail(c, "NTPSynchronized="+v+": unsynchronised clocks make cinder services look down", "enable an NTP client (systemctl enable --now systemd-timesyncd or chrony)")
	}
	return pass(c, "NTP synchronised")
}

var initiatorName = regexp.MustCompile(`(?m)^\s*InitiatorName\s*=\s*(\S+)\s*$`)

func (f *facts) iscsiInitiator() Check {
	c := Check{Name: "iscsi_initiator"}
	b, err := os.ReadFile(f.path("/etc/iscsi/initiatorname.iscsi"))
	if err != nil {
		return fail(c, "/etc/iscsi/initiatorname.iscsi: "+oneLine(err), "apt-get install open-iscsi, then systemctl start iscsid (generates a unique name)")
	}
	m := initiatorName.FindSubmatch(b)
	switch {
	case m == nil && strings.Contains(string(b), "GenerateName=yes"):
		return fail(c, "initiator name not generated yet (GenerateName=yes)", "systemctl start iscsid, or iscsi-iname to write a unique name")
	case m == nil:
		return fail(c, "no InitiatorName= line", "write InitiatorName=$(iscsi-iname) to /etc/iscsi/initiatorname.iscsi")
	}
	name := string(m[1])
	// A name ending at the vendor prefix is the unfilled template; a
	// cloned image carries its template host's name, so duplicates across
	// hosts are also worth a look (they broke live migration in the field).
	if strings.HasSuffix(name, ":") || strings.HasSuffix(name, ":01") {
		return fail(c, "InitiatorName "+name+" is a distribution placeholder", "write InitiatorName=$(iscsi-iname), then restart iscsid")
	}
	return pass(c, "InitiatorName "+name+" (must differ on every host: images cloned after first boot share it)")
}

func (f *facts) killCommandSupport() Check {
	c := Check{Name: "lvm_kill_command"}
	if f.versionErr != nil {
		return fail(c, "lvm version: "+oneLine(f.versionErr), "")
	}
	if !f.lvmVersion.AtLeast(hostcfg.KillCommandSince) {
		return warn(c, fmt.Sprintf("lvm2 %s has no lvmlockctl_kill_command (since %s)", f.lvmVersion, hostcfg.KillCommandSince),
			"upgrade lvm2, or rely on sanlock -w 1 with wdmd")
	}
	if f.killCommand == "" {
		return fail(c, fmt.Sprintf("lvm2 %s supports lvmlockctl_kill_command but it is empty", f.lvmVersion), "aos-agent install")
	}
	return pass(c, fmt.Sprintf("lvm2 %s, lvmlockctl_kill_command = %s", f.lvmVersion, f.killCommand))
}

// timeouts: multipath queues I/O for no_path_retry × polling_interval
// seconds after the last path fails; sanlock gives up on the lease after
// 8 × io_timeout. Queueing longer than that leaves I/O hanging while the
// kill runs (the host was reset on real guests); not queueing at all makes
// a short path blip an I/O error, i.e. look like lost storage.
func (f *facts) timeouts() Check {
	c := Check{Name: "io_timeouts"}
	q := multipath.ReadQueueConfig(f.path("/etc/multipath.conf"), f.path("/etc/multipath/conf.d"))
	io := sanlock.DefaultIOTimeout
	if f.status != nil {
		for _, vg := range f.env.VolumeGroups {
			if ls := f.status.Lockspace(sanlock.LockspacePrefix + vg); ls != nil && ls.IOTimeout() > 0 {
				io = ls.IOTimeout()
			}
		}
	}
	limit := sanlock.FailAfter(io)
	fix := fmt.Sprintf("set no_path_retry so that no_path_retry × polling_interval (%d s) is at most %s (8 × sanlock io_timeout %d s)", q.PollingInterval, limit, io)
	queue, forever, err := q.QueueFor()
	switch {
	case err != nil:
		return fail(c, err.Error(), fix)
	case forever:
		return fail(c, "no_path_retry queue: I/O queues forever, the kill hook hangs and the watchdog resets the host", fix)
	case queue == 0:
		return warn(c, "no_path_retry "+q.NoPathRetry+": a path blip of any length fails I/O at once", fix)
	}
	detail := fmt.Sprintf("multipath queues %s (no_path_retry %s × polling_interval %d s), sanlock fails the lease after %s (io_timeout %d s)", queue, q.NoPathRetry, q.PollingInterval, limit, io)
	if queue > limit {
		return fail(c, detail, fix)
	}
	return pass(c, detail)
}

func pass(c Check, detail string) Check { c.Status, c.Detail = Pass, detail; return c }
func warn(c Check, detail, fix string) Check {
	c.Status, c.Detail, c.Fix = Warn, detail, fix
	return c
}
func fail(c Check, detail, fix string) Check {
	c.Status, c.Detail, c.Fix = Fail, detail, fix
	return c
}

func orUnset(v string, ok bool) string {
	if !ok {
		return "unset"
	}
	return v
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
