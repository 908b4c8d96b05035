package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/configs"
	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/multipath"
)

// Where the binary lives, and so where lvm runs the kill hook from (lvm
// appends the VG name): the package's, or install's own copy on a host
// without the package (the units in configs/systemd name that one; the
// package build rewrites them).
const (
	localAgentPath    = "/usr/local/sbin/aos-agent"
	packagedAgentPath = "/usr/sbin/aos-agent"
)

// packagedUnits are where the aos-agent package puts the agent's unit
// (/lib is /usr/lib on a merged-/usr host). When one exists the package owns
// the binary and the units, and install writes only the host's settings.
var packagedUnits = []string{"/lib/systemd/system/aos-agent.service", "/usr/lib/systemd/system/aos-agent.service"}

func init() {
	register("install", "configure this host: LVM, host_id, multipath alias; units and binary unless packaged (idempotent, shows a diff)", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("install", flag.ContinueOnError)
		dryRun := fs.Bool("dry-run", false, "print the diff, change nothing")
		root := fs.String("root", "/", "install into this root (an image); systemctl runs with --root, no daemon-reload")
		cfgPath := fs.String("config", config.DefaultPath, "agent configuration file (for lvm.multipath_alias)")
		hostID := fs.Int("host-id", 0, "this host's sanlock host_id, 1..2000, unique among the hosts sharing the VG")
		wwid := fs.String("wwid", "", "WWID of the shared LUN; writes the multipath alias snippet")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if *hostID < 1 || *hostID > 2000 {
			fmt.Fprintln(os.Stderr, "install: --host-id must be in 1..2000")
			return 2
		}
		cfg, err := config.Load(filepath.Join(*root, *cfgPath))
		if err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			return 2
		}
		r := &run.Local{}
		packaged := isPackaged(*root)
		if packaged {
			fmt.Fprintln(os.Stderr, "install: the aos-agent package installed the binary and the units; writing the host settings only")
		}
		edits, err := installEdits(ctx, r, cfg, *hostID, *wwid, packaged)
		if err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			return 1
		}
		changes, err := hostcfg.Plan(*root, edits...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			return 1
		}
		for _, c := range changes {
			fmt.Print(c.Diff())
		}
		if len(changes) == 0 {
			fmt.Println("install: host already configured, nothing to change")
		}
		var left []string
		if packaged {
			left = shadowingFiles(*root)
		}
		if len(left) > 0 {
			// Units under /etc/systemd/system override the package's, so
			// the host would go on running the old copy. Once lvm.conf
			// names the package's binary they can go.
			fmt.Fprintf(os.Stderr, "install: an install without the package left files that shadow the package's; after this install, remove them and run `systemctl daemon-reload`:\n  rm %s\n",
				strings.Join(left, " "))
		}
		if *dryRun {
			return 0
		}
		if err := hostcfg.Write(changes); err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			return 1
		}
		for _, argv := range systemctlArgv(*root) {
			if _, err := r.Run(ctx, run.Cmd{Argv: argv}); err != nil {
				fmt.Fprintln(os.Stderr, "install:", err)
				return 1
			}
		}
		if len(left) > 0 {
			return 1
		}
		return 0
	})
}

func isPackaged(root string) bool {
	for _, u := range packagedUnits {
		if _, err := os.Stat(filepath.Join(root, u)); err == nil {
			return true
		}
	}
	return false
}

// shadowingFiles are the binary and units an install without the package
// wrote, as paths on the host.
func shadowingFiles(root string) []string {
	var left []string
	for _, p := range append([]string{localAgentPath}, unitPaths()...) {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			left = append(left, p)
		}
	}
	return left
}

func unitPaths() []string {
	var out []string
	for _, u := range configs.Units() {
		out = append(out, path.Join(configs.UnitDir, u))
	}
	return out
}

// installEdits lists every file install owns: lvm.conf, lvmlocal.conf, the
// multipath alias and, unless packaged, the binary, units and drop-ins.
func installEdits(ctx context.Context, r run.Runner, cfg *config.Config, hostID int, wwid string, packaged bool) ([]hostcfg.Edit, error) {
	agentPath := packagedAgentPath
	var edits []hostcfg.Edit
	if !packaged {
		agentPath = localAgentPath
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin, err := os.ReadFile(self)
		if err != nil {
			return nil, err
		}
		edits = append(edits, binaryEdit(bin))
		for _, u := range configs.Units() {
			b, err := configs.ReadUnit(u)
			if err != nil {
				return nil, err
			}
			edits = append(edits, hostcfg.Replace(path.Join(configs.UnitDir, u), 0o644, b))
		}
	}
	global := []hostcfg.Setting{{Section: "global", Key: "use_lvmlockd", Value: hostcfg.Int(1)}}
	res, err := r.Run(ctx, run.Cmd{Argv: []string{"lvm", "version"}})
	if err != nil {
		return nil, err
	}
	v, err := hostcfg.ParseLVMVersion(res.Stdout)
	if err != nil {
		return nil, err
	}
	if v.AtLeast(hostcfg.KillCommandSince) {
		global = append(global, hostcfg.Setting{Section: "global", Key: "lvmlockctl_kill_command", Value: hostcfg.Quote(agentPath + " kill-hook")})
	} else {
		fmt.Fprintf(os.Stderr, "install: lvm2 %s has no lvmlockctl_kill_command (needs %s): fencing relies on the sanlock watchdog alone\n", v, hostcfg.KillCommandSince)
	}
	edits = append(edits,
		hostcfg.LVMSettings("/etc/lvm/lvm.conf", global...),
		hostcfg.LVMSettings("/etc/lvm/lvmlocal.conf", hostcfg.Setting{Section: "local", Key: "host_id", Value: hostcfg.Int(hostID)}))
	if wwid != "" {
		if cfg.LVM.MultipathAlias == "" {
			return nil, fmt.Errorf("--wwid given but lvm.multipath_alias is not set in the config")
		}
		snippet, err := multipath.RenderAliasSnippet(wwid, cfg.LVM.MultipathAlias)
		if err != nil {
			return nil, err
		}
		edits = append(edits, hostcfg.Replace("/etc/multipath/conf.d/aos-agent.conf", 0o644, []byte(snippet)))
	}
	return edits, nil
}

// binaryEdit installs this executable; its diff is summarised, not printed.
func binaryEdit(bin []byte) hostcfg.Edit {
	return hostcfg.Edit{Path: localAgentPath, Mode: 0o755, Binary: true, Apply: func([]byte) ([]byte, error) { return bin, nil }}
}

// systemctlArgv enables the units; on the live host it reloads systemd
// first so the new units are seen.
func systemctlArgv(root string) [][]string {
	if root == "/" {
		return [][]string{{"systemctl", "daemon-reload"}, append([]string{"systemctl", "enable"}, configs.EnableUnits...)}
	}
	return [][]string{append([]string{"systemctl", "--root", root, "enable"}, configs.EnableUnits...)}
}
