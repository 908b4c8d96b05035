// Package sanlock reads the state of sanlock and lvmlockd on this host and
// drives lvmlockctl: parsers for `sanlock client status -D`, `host_status`,
// `renewal`, `gets` and `lvmlockctl --info [--dump]`, a per-VG lockspace
// health model, and `lvmlockctl --kill/--drop`. Every command goes through
// run.Runner.
package sanlock

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// The argv of every command this package runs, spelled once: the clients
// run them, and the tests of the packages that script sanlock and lvmlockd
// expect them.

// StatusArgv is `sanlock client status -D`.
func StatusArgv() []string { return []string{"sanlock", "client", "status", "-D"} }

// HostStatusArgv is `sanlock client host_status -D -s LS`.
func HostStatusArgv(lockspace string) []string {
	return []string{"sanlock", "client", "host_status", "-D", "-s", lockspace}
}

// RenewalArgv is `sanlock client renewal -s LS`.
func RenewalArgv(lockspace string) []string {
	return []string{"sanlock", "client", "renewal", "-s", lockspace}
}

// GetsArgv is `sanlock client gets -h 1`.
func GetsArgv() []string { return []string{"sanlock", "client", "gets", "-h", "1"} }

// pingArgv is the plain `sanlock client status` that tells a missing
// lockspace from a daemon that is down.
func pingArgv() []string { return []string{"sanlock", "client", "status"} }

// InfoArgv is `lvmlockctl --info`.
func InfoArgv() []string { return []string{"lvmlockctl", "--info"} }

// DumpArgv is `lvmlockctl --info --dump`.
func DumpArgv() []string { return []string{"lvmlockctl", "--info", "--dump"} }

// KillArgv is `lvmlockctl --kill VG`.
func KillArgv(vg string) []string { return []string{"lvmlockctl", "--kill", vg} }

// DropArgv is `lvmlockctl --drop VG`.
func DropArgv(vg string) []string { return []string{"lvmlockctl", "--drop", vg} }

// Client queries the sanlock daemon through `sanlock client`.
type Client struct {
	r       run.Runner
	timeout time.Duration
}

// New returns a Client; timeout bounds each command (0: the runner's default).
func New(r run.Runner, timeout time.Duration) *Client { return &Client{r: r, timeout: timeout} }

// Status runs `sanlock client status -D`.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	out, err := c.run(ctx, StatusArgv())
	if err != nil {
		return nil, err
	}
	return ParseStatus(out)
}

// HostStatus runs `sanlock client host_status -D -s LS` (-s takes a
// lockspace name; sanlock src/main.c parse_arg_lockspace).
func (c *Client) HostStatus(ctx context.Context, lockspace string) (*HostStatus, error) {
	if err := validLockspace(lockspace); err != nil {
		return nil, err
	}
	out, err := c.runLockspace(ctx, lockspace, HostStatusArgv(lockspace))
	if err != nil {
		return nil, err
	}
	all, err := ParseHostStatus(out)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Lockspace == lockspace || all[i].Lockspace == "" {
			all[i].Lockspace = lockspace
			return &all[i], nil
		}
	}
	return &HostStatus{Lockspace: lockspace}, nil
}

// Renewal runs `sanlock client renewal -s LS`: the lockspace's recent
// renewal history (read/write latency, timeouts, errors).
func (c *Client) Renewal(ctx context.Context, lockspace string) ([]Renewal, error) {
	if err := validLockspace(lockspace); err != nil {
		return nil, err
	}
	out, err := c.runLockspace(ctx, lockspace, RenewalArgv(lockspace))
	if err != nil {
		return nil, err
	}
	return ParseRenewal(out)
}

// runLockspace runs a per-lockspace query. sanlock 3.8.5 fails these the
// same way (exit 1, nothing on stdout) whether the lockspace is unknown or
// the daemon is down, so a plain `status` tells the two apart:
// ErrLockspaceNotStarted or ErrLockManagerDown.
func (c *Client) runLockspace(ctx context.Context, lockspace string, argv []string) ([]byte, error) {
	res, err := c.r.Run(ctx, run.Cmd{Argv: argv, Timeout: c.timeout})
	var rerr *run.Error
	if err == nil || !errors.As(err, &rerr) || rerr.TimedOut || rerr.Err != nil {
		return res.Stdout, err
	}
	if _, perr := c.run(ctx, pingArgv()); perr != nil {
		return nil, perr
	}
	return nil, errdefs.Wrap(errdefs.ErrLockspaceNotStarted, err, fmt.Sprintf("sanlock has no lockspace %s", lockspace))
}

// Gets runs `sanlock client gets -h 1`: every lockspace with sanlock's
// verdict on each host (LIVE, FAIL, DEAD, ...).
func (c *Client) Gets(ctx context.Context) ([]GetsLockspace, error) {
	out, err := c.run(ctx, GetsArgv())
	if err != nil {
		return nil, err
	}
	return ParseGets(out)
}

func (c *Client) run(ctx context.Context, argv []string) ([]byte, error) {
	res, err := c.r.Run(ctx, run.Cmd{Argv: argv, Timeout: c.timeout})
	if err != nil {
		return nil, classify(err, res, sanlockDown)
	}
	return res.Stdout, nil
}

// sanlock's client prints nothing when it cannot reach the daemon socket
// (connect fails with -ECONNREFUSED or -ENOENT); some actions print
// "<action> error -111".
var sanlockDown = regexp.MustCompile(`Connection refused|No such file or directory|error -(111|2)\b`)

// LockCtl drives lvmlockd through lvmlockctl.
type LockCtl struct {
	r       run.Runner
	timeout time.Duration
}

// NewLockCtl returns a LockCtl; timeout bounds each command.
func NewLockCtl(r run.Runner, timeout time.Duration) *LockCtl {
	return &LockCtl{r: r, timeout: timeout}
}

// Info runs `lvmlockctl --info`.
func (l *LockCtl) Info(ctx context.Context) (*Info, error) {
	out, err := l.run(ctx, InfoArgv())
	if err != nil {
		return nil, err
	}
	return ParseInfo(out)
}

// Dump runs `lvmlockctl --info --dump`, the raw form that carries kill_vg.
func (l *LockCtl) Dump(ctx context.Context) (*Dump, error) {
	out, err := l.run(ctx, DumpArgv())
	if err != nil {
		return nil, err
	}
	return ParseDump(out)
}

// Kill runs `lvmlockctl --kill VG`: lvmlockd marks the VG's lockspace
// killed, and on lvm2 >= 2.03.12 runs global/lvmlockctl_kill_command.
func (l *LockCtl) Kill(ctx context.Context, vg string) error {
	if err := validVG(vg); err != nil {
		return err
	}
	_, err := l.run(ctx, KillArgv(vg))
	return err
}

// Drop runs `lvmlockctl --drop VG`: release the VG's locks after its LVs
// were taken offline following a kill.
func (l *LockCtl) Drop(ctx context.Context, vg string) error {
	if err := validVG(vg); err != nil {
		return err
	}
	_, err := l.run(ctx, DropArgv(vg))
	return err
}

// dumpMu serialises this process's --info/--dump. lvmlockctl receives a
// dump on an abstract socket of a fixed name (lvm2 lvmlockctl.c,
// DUMP_SOCKET_NAME "lvmlockd-dump.sock"): two at once on a host, and the
// second fails "socket error -98" (EADDRINUSE). Seen in the lab when a test's
// lvmlockctl --info met the agent's poll.
var dumpMu sync.Mutex

// dumpBusy is lvmlockctl's message when another dump holds the socket.
var dumpBusy = regexp.MustCompile(`socket error -98\b`)

// dumpRetries bound the waits for another process's dump (an operator's
// lvmlockctl, another tool) to end: each takes milliseconds.
const dumpRetries = 5

func (l *LockCtl) run(ctx context.Context, argv []string) ([]byte, error) {
	if !slices.Contains(argv, "--info") && !slices.Contains(argv, "--dump") {
		return l.runOnce(ctx, argv)
	}
	dumpMu.Lock()
	defer dumpMu.Unlock()
	for attempt := 1; ; attempt++ {
		out, err := l.runOnce(ctx, argv)
		var rerr *run.Error
		if err == nil || attempt > dumpRetries || !errors.As(err, &rerr) || !dumpBusy.MatchString(rerr.Stderr+string(out)) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}

func (l *LockCtl) runOnce(ctx context.Context, argv []string) ([]byte, error) {
	res, err := l.r.Run(ctx, run.Cmd{Argv: argv, Timeout: l.timeout})
	if err != nil {
		return res.Stdout, classify(err, res, lvmlockdDown)
	}
	return res.Stdout, nil
}

// lvmlockctl prints "Cannot connect to lvmlockd." when the daemon is not
// running; "socket error -N" was seen on a real guest while lvmlockd was
// tearing a failed lockspace down (lab run g), also a retryable outage.
var lvmlockdDown = regexp.MustCompile(`Cannot connect to lvmlockd|socket error -?\d+`)

// classify maps a failed command to an error class: timeouts keep their
// CommandTimeout class; an unreachable daemon is ErrLockManagerDown.
func classify(err error, res run.Result, down *regexp.Regexp) error {
	var rerr *run.Error
	if !errors.As(err, &rerr) || rerr.TimedOut || rerr.Err != nil {
		return err
	}
	text := rerr.Stderr + "\n" + string(res.Stdout)
	if down.MatchString(text) || strings.TrimSpace(text) == "" {
		return errdefs.Wrap(errdefs.ErrLockManagerDown, err,
			fmt.Sprintf("%s: lock manager not reachable: %v", rerr.Argv[0], err))
	}
	return err
}

// validVG accepts LVM's VG name characters (lvm2 lib/misc/lvm-string.c
// _validate_name): letters, digits, "+_.-", not starting with '-'.
func validVG(vg string) error {
	if vg == "" || vg[0] == '-' || vg == "." || vg == ".." || len(vg) > 127 || strings.IndexFunc(vg, badNameRune) >= 0 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid VG name %q", vg)
	}
	return nil
}

// validLockspace accepts sanlock lockspace names: at most 48 bytes
// (SANLK_NAME_LEN), no ':' (the reference separator) and no whitespace.
func validLockspace(ls string) error {
	if ls == "" || ls[0] == '-' || len(ls) > 48 || strings.IndexFunc(ls, badNameRune) >= 0 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid lockspace name %q", ls)
	}
	return nil
}

func badNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+_.-", r))
}
