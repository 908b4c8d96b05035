package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// docs renders the man pages and the bash completion from the command table
// and each command's own -h output (Go's flag.PrintDefaults format), so
// what the package ships cannot drift from the binary it ships with.
func init() {
	register("docs", "write the man pages (section 8) and the bash completion (the package build runs it)", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("docs", flag.ContinueOnError)
		manDir := fs.String("man-dir", "", "write aos-agent.8 and one aos-agent-COMMAND.8 per command into this `directory`")
		completion := fs.String("bash-completion", "", "write the bash completion script to this `file`")
		date := fs.String("date", time.Now().UTC().Format(time.DateOnly), "the pages' date, YYYY-MM-DD (the package passes its SOURCE_DATE_EPOCH's)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() != 0 || (*manDir == "" && *completion == "") {
			fmt.Fprintln(os.Stderr, "usage: aos-agent docs [--date YYYY-MM-DD] [--man-dir DIR] [--bash-completion FILE]")
			return 2
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "docs:", err)
			return 1
		}
		docs, err := describeCommands(ctx, &run.Local{}, self)
		if err == nil && *manDir != "" {
			err = writeManPages(*manDir, docs, *date)
		}
		if err == nil && *completion != "" {
			err = os.WriteFile(*completion, []byte(bashCompletion(docs)), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "docs:", err)
			return 1
		}
		return 0
	})
}

// cmdDoc is one subcommand as its man page shows it.
type cmdDoc struct {
	Name, Summary string
	Args          string   // positional arguments, from a "usage: aos-agent NAME ..." line
	Notes         []string // other lines its usage prints before the flags
	Flags         []flagDoc
}

// flagDoc is one flag: Arg names its value ("" for a boolean).
type flagDoc struct{ Name, Arg, Usage string }

// describeCommands asks every registered command for its -h. run.Local gives
// it a minimal environment, so defaults read from the environment
// (AOS_TRANSPORT_URL) never land in the pages.
func describeCommands(ctx context.Context, r run.Runner, self string) ([]cmdDoc, error) {
	var docs []cmdDoc
	for _, n := range commands.Names() {
		res, err := r.Run(ctx, run.Cmd{Argv: []string{self, n, "-h"}, Timeout: 30 * time.Second})
		// flag answers -h with the usage and exit 2; anything else means
		// the command did not parse its flags first.
		var rerr *run.Error
		if !errors.As(err, &rerr) || rerr.ExitCode != 2 {
			return nil, fmt.Errorf("%s -h: want its usage and exit 2, got %v", n, err)
		}
		d := parseHelp(n, string(res.Stdout)+string(res.Stderr))
		d.Summary = commands.Summary(n)
		docs = append(docs, d)
	}
	return docs, nil
}

// parseHelp reads a command's usage: an optional "usage: aos-agent NAME
// ARGS" line and notes, then flag.PrintDefaults: "  -name type" (the
// usage on the same line after a tab for one-letter flags), then usage
// lines indented "    \t".
func parseHelp(name, help string) cmdDoc {
	d := cmdDoc{Name: name}
	usagePrefix := "usage: aos-agent " + name
	var cur *flagDoc
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "    \t") && cur != nil:
			cur.Usage = strings.TrimSpace(cur.Usage + "\n" + strings.TrimPrefix(line, "    \t"))
		case strings.HasPrefix(line, "  -"):
			head, usage, _ := strings.Cut(strings.TrimPrefix(line, "  -"), "\t")
			fname, arg, _ := strings.Cut(strings.TrimSpace(head), " ")
			d.Flags = append(d.Flags, flagDoc{Name: fname, Arg: arg, Usage: usage})
			cur = &d.Flags[len(d.Flags)-1]
		case strings.HasPrefix(line, usagePrefix):
			d.Args = strings.TrimSpace(strings.TrimPrefix(line, usagePrefix))
			// "[flags] HOST ..." or "[--config PATH] VG": OPTIONS lists those.
			for strings.HasPrefix(d.Args, "[flags]") || strings.HasPrefix(d.Args, "[-") {
				_, rest, _ := strings.Cut(d.Args, "]")
				d.Args = strings.TrimSpace(rest)
			}
		case strings.HasPrefix(line, "Usage of "), strings.TrimSpace(line) == "":
		default:
			d.Notes = append(d.Notes, strings.TrimSpace(line))
		}
	}
	return d
}

// descriptions say more than a command's one-line summary where an
// operator needs it: when the command runs and what it leaves behind.
var descriptions = map[string]string{
	"run": "Started by aos-agent.service. It sends READY to systemd once every configured VG lockspace is joined " +
		"and the RPC consumer is up, pets the watchdog from its health loop, reports what it waits for or what is " +
		"wrong in STATUS and in its metrics, and on SIGTERM stops consuming, lets calls in flight finish and leaves " +
		"every lock where it is: a restart of the agent does not touch the LVs it activated.",
	"lockstart": "The boot step of aos-agent-lockstart.service: it waits for the multipath map of the LUN, sanlock " +
		"and lvmlockd, starts the lockspaces of the configured VGs and re-activates the LVs held.json names, each in " +
		"its recorded lock mode, all bounded by lvm.lock_start_timeout.",
	"lockstop": "The ExecStop of aos-agent-lockstart.service, run at shutdown after the workloads stopped: it " +
		"deactivates the LVs nothing holds open and stops the lockspaces, so sanlock and lvmlockd can stop. " +
		"held.json is kept for the next boot.",
	"kill-hook": "Set as lvmlockctl_kill_command in lvm.conf by aos-agent install. When sanlock declares the VG's " +
		"lease lost, lvmlockctl runs it with the VG name: it turns multipath queueing off on the LUN's map, replaces " +
		"the table of every LV of the VG with the error target, verifies and writes a recovery journal. Exit 0 lets " +
		"lvmlockctl drop the VG's locks instead of leaving the host to the watchdog.",
	"recover": "Undoes a fence once the storage is back: restores queueing, re-acquires each fenced LV in its " +
		"recorded mode, reports the LVs another host took meanwhile as lost and resumes the domains whose volumes " +
		"came back unchanged. With recovery.mode = auto the agent does this by itself.",
	"install": "The explicit host step after installing the package, idempotent and shown as a diff before " +
		"anything is written (--dry-run writes nothing): use_lvmlockd and lvmlockctl_kill_command in " +
		"/etc/lvm/lvm.conf, host_id in /etc/lvm/lvmlocal.conf and, with --wwid, the multipath alias in " +
		"/etc/multipath/conf.d/aos-agent.conf; then it enables the units. Where the aos-agent package installed " +
		"the units it writes no binary and no unit; without the package it installs itself as " +
		"/usr/local/sbin/aos-agent with the units under /etc/systemd/system.",
	"doctor": "Checks lvmlockd, host_id, the LVM filter, the multipath paths, fencing (Debian's default " +
		"sanlock -w 0 with no kill command is a failure), the clock and the consistency of the timeouts, and " +
		"prints a fix for each problem.",
	"restart-check": "The package's upgrade restarts aos-agent.service only when this exits 0: the unit is active " +
		"and reports serving, the configuration loads with the new version, no VG is fenced or in recovery, and no " +
		"wipe or copy is in flight. Otherwise the old agent keeps running and the reason is printed; restart it " +
		"later with systemctl restart aos-agent.service. aos-agent-lockstart.service, sanlock and lvmlockd are " +
		"never restarted.",
	"call": "Calls any agent through the broker as cinder's driver does and prints the reply as JSON; the " +
		"methods are those of the RPC contract (docs/rpc.md).",
}

func writeManPages(dir string, docs []cmdDoc, date string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "aos-agent.8"), []byte(mainManPage(docs, date)), 0o644); err != nil {
		return err
	}
	for _, d := range docs {
		if err := os.WriteFile(filepath.Join(dir, "aos-agent-"+d.Name+".8"), []byte(manPage(d, date)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// roff escapes text for a man page: backslashes, minus signs (so options
// copy as ASCII hyphens) and a control character at a line's start.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

func th(title, date string) string {
	return fmt.Sprintf(".TH %s 8 %q \"aos-agent %s\" \"System Administration\"\n", roff(strings.ToUpper(title)), date, roff(version))
}

func manPage(d cmdDoc, date string) string {
	var b strings.Builder
	b.WriteString(th("aos-agent-"+d.Name, date))
	fmt.Fprintf(&b, ".SH NAME\naos\\-agent\\-%s \\- %s\n", roff(d.Name), roff(d.Summary))
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B aos\\-agent %s\n[\\fIOPTIONS\\fR]", roff(d.Name))
	if d.Args != "" {
		fmt.Fprintf(&b, "\n.I %s", roff(d.Args))
	}
	fmt.Fprintf(&b, "\n.SH DESCRIPTION\n%s.\n", roff(strings.ToUpper(d.Summary[:1])+d.Summary[1:]))
	if more := descriptions[d.Name]; more != "" {
		fmt.Fprintf(&b, ".PP\n%s\n", roff(more))
	}
	for _, n := range d.Notes {
		fmt.Fprintf(&b, ".PP\n%s\n", roff(n))
	}
	b.WriteString(".SH OPTIONS\nOptions take one or two leading dashes.\n")
	for _, f := range d.Flags {
		if f.Arg == "" {
			fmt.Fprintf(&b, ".TP\n.B \\-\\-%s\n", roff(f.Name))
		} else {
			fmt.Fprintf(&b, ".TP\n.BI \\-\\-%s \" %s\"\n", roff(f.Name), roff(f.Arg))
		}
		fmt.Fprintf(&b, "%s\n", roff(f.Usage))
	}
	b.WriteString(".TP\n.B \\-h\\fR, \\fB\\-\\-help\nPrint the usage and exit 2.\n")
	b.WriteString(".SH SEE ALSO\n.BR aos\\-agent (8)\n")
	return b.String()
}

func mainManPage(docs []cmdDoc, date string) string {
	var b strings.Builder
	b.WriteString(th("aos-agent", date))
	b.WriteString(`.SH NAME
aos\-agent \- node agent for OpenStack hosts sharing an lvmlockd/sanlock volume group
.SH SYNOPSIS
.B aos\-agent
.I COMMAND
[\fIOPTIONS\fR] [\fIARGUMENTS\fR]
.SH DESCRIPTION
One agent runs on each compute and cinder\-volume host that shares the volume group.
It activates, deactivates, creates, extends, deletes, snapshots and clones logical volumes
with the right lvmlockd locks when cinder's SharedLVM driver asks over oslo.messaging RPC,
starts the lockspaces at boot before nova\-compute and cinder\-volume, fences the volume group
when its sanlock lease is lost and recovers it once the storage returns.
.PP
The package installs the binary, the systemd units and their drop\-ins and enables the units;
it never starts them and never edits the LVM or multipath configuration.
.B aos\-agent install
does that host step, showing the diff first with
.BR \-\-dry\-run ;
.B aos\-agent doctor
checks the host afterwards.
.SH COMMANDS
`)
	for _, d := range docs {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s; see\n.BR aos\\-agent\\-%s (8).\n", roff(d.Name), roff(d.Summary), roff(d.Name))
	}
	b.WriteString(`.SH OPTIONS
.TP
.B \-h\fR, \fB\-\-help
List the commands and exit 2.
Each command takes its own options, listed by
.BI "aos\-agent " COMMAND " \-h"
and in its page.
.SH FILES
.TP
.I /etc/aos\-agent/aos\-agent.conf
The configuration (INI, like cinder.conf); unknown keys are errors.
.TP
.I /var/lib/aos\-agent/
State that outlives restarts and reboots: held.json (the LVs this host holds and their lock modes),
recovery journals. Removing the package keeps it.
.TP
.I /lib/systemd/system/aos\-agent.service\fR, \fI/lib/systemd/system/aos\-agent\-lockstart.service
The agent (Type=notify) and the boot step that starts the lockspaces.
.TP
.I /usr/share/aos\-agent/
Prometheus alert rules and the Grafana dashboard.
.SH SEE ALSO
`)
	refs := []string{`.BR lvmlockd (8)`, `.BR sanlock (8)`, `.BR multipath (8)`}
	for _, d := range docs {
		refs = append(refs, fmt.Sprintf(".BR aos\\-agent\\-%s (8)", roff(d.Name)))
	}
	b.WriteString(strings.Join(refs, ",\n") + "\n")
	return b.String()
}

// bashCompletion completes command names, then each command's flags; other
// words fall back to file names (complete -o default).
func bashCompletion(docs []cmdDoc) string {
	var names []string
	var cases strings.Builder
	for _, d := range docs {
		names = append(names, d.Name)
		flags := []string{"--help"}
		for _, f := range d.Flags {
			flags = append(flags, "--"+f.Name)
		}
		fmt.Fprintf(&cases, "        %s) opts=%q ;;\n", d.Name, strings.Join(flags, " "))
	}
	return fmt.Sprintf(`# bash completion for aos-agent(8), written by "aos-agent docs".
_aos_agent() {
    local cur=${COMP_WORDS[COMP_CWORD]} opts
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W %q -- "$cur"))
        return
    fi
    case ${COMP_WORDS[1]} in
%s        *) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}
complete -o default -F _aos_agent aos-agent
`, strings.Join(names, " "), cases.String())
}
