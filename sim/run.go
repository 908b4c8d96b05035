package sim

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// reply is what a simulated command prints and how it exits. wait is sim
// time the command takes (a lockspace join); hang makes it block until its
// context ends (I/O queued on a dead map, a daemon refusing to stop); after
// runs once the cluster lock is released (a kill command); exec is a real
// program run then, whose output and exit code become the reply's (dd on
// real devices, Options.DataDir).
type reply struct {
	stdout, stderr string
	code           int
	wait           time.Duration
	hang           bool
	after          func()
	exec           []string
}

func fail(code int, stderr string) reply { return reply{stderr: stderr, code: code} }

// Run answers one command as the host's real tools would.
func (h *Host) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	if len(c.Argv) == 0 {
		return run.Result{}, errors.New("run: empty argv")
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	start := time.Now()
	h.c.mu.Lock()
	stall := h.stalled()
	h.c.mu.Unlock()
	if stall > 0 && readsLUN[c.Argv[0]] {
		// A suspended map holds the I/O; the command runs once it resumes.
		if err := sleep(ctx, h.c.clock, stall); err != nil {
			return run.Result{Duration: time.Since(start), ExitCode: -1},
				&run.Error{Argv: c.Argv, ExitCode: -1, TimedOut: errors.Is(err, context.DeadlineExceeded), Err: err}
		}
	}
	h.c.mu.Lock()
	r := h.dispatch(c.Argv)
	if h.c.dev != nil {
		if err := h.c.syncLinks(); err != nil && r.code == 0 {
			r = fail(5, "  sim: device links: "+err.Error()+"\n")
		}
	}
	h.c.mu.Unlock()
	if r.after != nil {
		r.after()
	}
	if r.exec != nil {
		r = runReal(ctx, r.exec)
	}
	if r.hang {
		<-ctx.Done()
	} else if err := sleep(ctx, h.c.clock, r.wait); err != nil {
		r.hang = true
	}
	res := run.Result{Stdout: []byte(r.stdout), Stderr: []byte(r.stderr), ExitCode: r.code, Duration: time.Since(start)}
	if r.hang {
		// What run.Local reports for a command killed at its deadline.
		res = run.Result{Duration: time.Since(start), ExitCode: -1}
		return res, &run.Error{Argv: c.Argv, ExitCode: -1, TimedOut: errors.Is(ctx.Err(), context.DeadlineExceeded), Err: ctx.Err()}
	}
	if r.code != 0 {
		return res, &run.Error{Argv: c.Argv, ExitCode: r.code, Stderr: r.stderr}
	}
	return res, nil
}

// runReal runs argv on this machine; a program killed at the context's
// end is reported as a hang, as a simulated one would be.
func runReal(ctx context.Context, argv []string) reply {
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return reply{hang: true}
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		return fail(127, err.Error()+"\n")
	}
	return reply{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// readsLUN are the programs whose work does I/O to the shared LUN.
var readsLUN = map[string]bool{"vgs": true, "lvs": true, "vgchange": true, "lvchange": true, "lvcreate": true,
	"lvremove": true, "lvextend": true, "dd": true}

func (h *Host) dispatch(argv []string) reply {
	joined := strings.Join(argv, " ")
	for _, p := range h.hangs {
		if strings.Contains(joined, p) {
			return reply{hang: true}
		}
	}
	for _, cmd := range commands {
		if cmd.name != argv[0] {
			continue
		}
		a, err := parseArgs(argv[1:], cmd.flags)
		if err != nil {
			return fail(3, fmt.Sprintf("  %s: %v\n", argv[0], err))
		}
		return cmd.fn(h, a)
	}
	return unsupported(argv)
}

// unsupported is loud on purpose: an argv the simulator does not know means
// production and simulator disagree.
func unsupported(argv []string) reply {
	return fail(127, fmt.Sprintf("sim: unsupported command: %q\n", argv))
}

// args is a parsed command line: canonical flag → value ("" for booleans),
// and positional arguments in order.
type args struct {
	argv  []string
	flags map[string]string
	pos   []string
}

func (a *args) has(f string) bool { _, ok := a.flags[f]; return ok }

// flagSpec maps every accepted spelling to its canonical name and whether it
// takes a value.
type flagSpec map[string]flagDef

type flagDef struct {
	canon string
	value bool
}

func spec(defs ...string) flagSpec {
	s := flagSpec{}
	for _, d := range defs {
		// "canon=alias1,alias2" with a trailing ":" on canon meaning "takes a value".
		names, aliases, _ := strings.Cut(d, "=")
		value := strings.HasSuffix(names, ":")
		canon := strings.TrimSuffix(names, ":")
		s[canon] = flagDef{canon, value}
		if aliases != "" {
			for _, al := range strings.Split(aliases, ",") {
				s[al] = flagDef{canon, value}
			}
		}
	}
	return s
}

func parseArgs(argv []string, s flagSpec) (*args, error) {
	a := &args{argv: argv, flags: map[string]string{}}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" || s == nil {
			a.pos = append(a.pos, arg)
			continue
		}
		name, val, hasVal := strings.Cut(arg, "=")
		def, ok := s[name]
		if !ok && !strings.HasPrefix(arg, "--") && len(arg) > 2 {
			// attached short value: -aey, -L64m, -Zn
			name, val, hasVal = arg[:2], arg[2:], true
			def, ok = s[name]
		}
		if !ok {
			return nil, fmt.Errorf("unrecognized option %q", arg)
		}
		if !def.value {
			if hasVal {
				return nil, fmt.Errorf("option %s takes no argument", name)
			}
			a.flags[def.canon] = ""
			continue
		}
		if !hasVal {
			if i+1 >= len(argv) {
				return nil, fmt.Errorf("option %s requires an argument", name)
			}
			i++
			val = argv[i]
		}
		if prev, dup := a.flags[def.canon]; dup && def.canon == "-o" {
			val = prev + "," + val
		}
		a.flags[def.canon] = val
	}
	return a, nil
}
