// Package multipath reads map and path state from multipathd (0.9.4 and
// later), renders the multipaths{} alias snippet, and switches queueing off
// and on for lockspace recovery. Every command goes through run.Runner.
package multipath

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

var (
	// ErrMapNotFound: multipathd answered "fail" to a query for one map.
	ErrMapNotFound = errors.New("multipath map not found")
	// ErrNotRunning: the multipathd client could not reach the daemon (it
	// exits 1 and prints nothing).
	ErrNotRunning = errors.New("multipathd not running")
)

// Map is one multipath map as `multipathd show maps json` prints it
// (multipath-tools 0.9.4 libmultipath/print.c PRINT_JSON_MAP).
type Map struct {
	Name     string `json:"name"` // the alias, e.g. "lun0"
	WWID     string `json:"uuid"`
	Sysfs    string `json:"sysfs"` // dm device, e.g. "dm-0"
	DMState  string `json:"dm_st"` // active, suspend or undef
	Queueing string `json:"queueing"`
	Features string `json:"features"`
	// ActivePathCount is multipathd's own count of active paths.
	ActivePathCount int         `json:"paths"`
	PathFaults      int         `json:"path_faults"`
	Groups          []PathGroup `json:"path_groups"`
}

// PathGroup is one priority group of a map.
type PathGroup struct {
	Selector string `json:"selector"`
	Priority int    `json:"pri"`
	DMState  string `json:"dm_st"` // active, enabled or disabled
	Number   int    `json:"group"`
	Paths    []Path `json:"paths"`
}

// Path is one path (an sd device) of a map.
type Path struct {
	Dev          string `json:"dev"`    // e.g. "sda"
	DevT         string `json:"dev_t"`  // e.g. "8:0"
	DMState      string `json:"dm_st"`  // active or failed: the kernel's view
	DevState     string `json:"dev_st"` // running or offline
	CheckerState string `json:"chk_st"` // ready, faulty, shaky, ghost, i/o pending, ...
	Checker      string `json:"checker"`
	// Map and WWID are filled by Paths (raw format); the JSON nests paths
	// under their map instead.
	Map  string `json:"-"`
	WWID string `json:"-"`
	HCIL string `json:"-"`
}

// Active reports whether I/O can go down the path now: the kernel has it
// active and the checker finds it ready (or ghost: a standby path that
// takes I/O after a failover).
func (p Path) Active() bool {
	return p.DMState == "active" && (p.CheckerState == "ready" || p.CheckerState == "ghost")
}

// Paths lists every path of the map across its groups.
func (m *Map) Paths() []Path {
	var out []Path
	for _, g := range m.Groups {
		out = append(out, g.Paths...)
	}
	return out
}

// ActivePaths lists the paths that can carry I/O.
func (m *Map) ActivePaths() []Path { return m.filter(true) }

// FailedPaths lists the paths that cannot.
func (m *Map) FailedPaths() []Path { return m.filter(false) }

func (m *Map) filter(active bool) []Path {
	var out []Path
	for _, p := range m.Paths() {
		if p.Active() == active {
			out = append(out, p)
		}
	}
	return out
}

// ParseMapsJSON parses `multipathd show maps json`.
func ParseMapsJSON(b []byte) ([]Map, error) {
	var doc struct {
		Maps []Map `json:"maps"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("multipathd show maps json: %w", err)
	}
	return doc.Maps, nil
}

// ParseMapJSON parses `multipathd show map NAME json`.
func ParseMapJSON(b []byte) (*Map, error) {
	var doc struct {
		Map *Map `json:"map"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("multipathd show map json: %w", err)
	}
	if doc.Map == nil {
		return nil, errors.New("multipathd show map json: no map object")
	}
	return doc.Map, nil
}

// pathFormat is the raw path format Paths asks for. '|' separates fields
// because checker states contain spaces ("i/o pending"). Wildcards from
// 0.9.4 libmultipath/print.c pd[]: %d dev, %D dev_t, %t dm_st, %T chk_st,
// %o dev_st, %m map alias ("[orphan]" when in no map), %w wwid, %i hcil.
const pathFormat = "%d|%D|%t|%T|%o|%m|%w|%i"

// ParsePaths parses `multipathd show paths raw format "%d|%D|%t|%T|%o|%m|%w|%i"`.
func ParsePaths(b []byte) ([]Path, error) {
	var out []Path
	for n, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) != 8 {
			return nil, fmt.Errorf("multipathd paths line %d: %d fields, want 8: %q", n+1, len(f), l)
		}
		out = append(out, Path{Dev: f[0], DevT: f[1], DMState: f[2], CheckerState: f[3], DevState: f[4],
			Map: f[5], WWID: f[6], HCIL: f[7]})
	}
	return out, nil
}

// Client talks to multipathd through its CLI.
type Client struct {
	r       run.Runner
	timeout time.Duration
}

// New returns a Client; timeout bounds each command.
func New(r run.Runner, timeout time.Duration) *Client { return &Client{r: r, timeout: timeout} }

// Maps runs `multipathd show maps json`: every map with its path groups and
// paths in one consistent snapshot.
func (c *Client) Maps(ctx context.Context) ([]Map, error) {
	out, err := c.multipathd(ctx, "show", "maps", "json")
	if err != nil {
		return nil, err
	}
	return ParseMapsJSON(out)
}

// Map runs `multipathd show map NAME json`; NAME may be the alias, the
// WWID or the dm device.
func (c *Client) Map(ctx context.Context, name string) (*Map, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	out, err := c.multipathd(ctx, "show", "map", name, "json")
	if errors.Is(err, errFail) {
		return nil, fmt.Errorf("%w: %s", ErrMapNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	return ParseMapJSON(out)
}

// Paths runs `multipathd show paths raw format ...`: every path multipathd
// knows, including those in no map.
func (c *Client) Paths(ctx context.Context) ([]Path, error) {
	out, err := c.multipathd(ctx, "show", "paths", "raw", "format", pathFormat)
	if err != nil {
		return nil, err
	}
	return ParsePaths(out)
}

// DisableQueueing runs `multipathd disablequeueing map MAP`: queued and new
// I/O on that map fails at once instead of waiting for a path. Needed
// before dm tables can be wiped on a dead LUN; it stays off until
// RestoreQueueing. mapName "" means every map of the host (`... maps`),
// a boot-from-SAN root included: only for a LUN whose map is unknown.
func (c *Client) DisableQueueing(ctx context.Context, mapName string) error {
	return c.queueing(ctx, "disablequeueing", mapName)
}

// RestoreQueueing runs `multipathd restorequeueing map MAP` (or `maps` for
// ""), undoing DisableQueueing once storage is back.
func (c *Client) RestoreQueueing(ctx context.Context, mapName string) error {
	return c.queueing(ctx, "restorequeueing", mapName)
}

func (c *Client) queueing(ctx context.Context, verb, mapName string) error {
	if mapName == "" {
		_, err := c.multipathd(ctx, verb, "maps")
		return err
	}
	if err := validName(mapName); err != nil {
		return err
	}
	_, err := c.multipathd(ctx, verb, "map", mapName)
	return err
}

// FailIfNoPath runs `dmsetup message MAP 0 fail_if_no_path`, which fails
// I/O already queued in the kernel on that map.
func (c *Client) FailIfNoPath(ctx context.Context, mapName string) error {
	if err := validName(mapName); err != nil {
		return err
	}
	_, err := c.r.Run(ctx, run.Cmd{Argv: []string{"dmsetup", "message", mapName, "0", "fail_if_no_path"}, Timeout: c.timeout})
	return err
}

// errFail is multipathd answering "fail" (exit 1); callers that know what
// a failure means for them translate it.
var errFail = errors.New("multipathd answered fail")

var recvTimeout = regexp.MustCompile(`timeout receiving packet`)

func (c *Client) multipathd(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{"multipathd"}, args...)
	res, err := c.r.Run(ctx, run.Cmd{Argv: argv, Timeout: c.timeout})
	var rerr *run.Error
	if err == nil || !errors.As(err, &rerr) || rerr.TimedOut || rerr.Err != nil {
		return res.Stdout, err
	}
	out := bytes.TrimSpace(res.Stdout)
	switch {
	case string(out) == "fail":
		return nil, fmt.Errorf("%s: %w: %w", strings.Join(argv, " "), errFail, err)
	case recvTimeout.Match(out):
		return nil, errdefs.Wrap(errdefs.ErrCommandTimeout, err, "multipathd did not answer in time")
	case len(out) == 0 && strings.TrimSpace(rerr.Stderr) == "":
		return nil, fmt.Errorf("%w: %w", ErrNotRunning, err)
	}
	return nil, err
}

// validName accepts map names, WWIDs and dm device names: printable ASCII
// without white space, quotes, braces or '#' (they would break the CLI and
// the config syntax), not starting with '-'.
func validName(s string) error {
	bad := func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("\"'{}#\\|", r) }
	if s == "" || s[0] == '-' || len(s) > 128 || strings.IndexFunc(s, bad) >= 0 {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid multipath name %q", s)
	}
	return nil
}

// RenderAliasSnippet returns a multipath.conf block that names the LUN
// with the given WWID alias, so every host sees /dev/mapper/<alias>.
func RenderAliasSnippet(wwid, alias string) (string, error) {
	if err := validName(wwid); err != nil {
		return "", err
	}
	if err := validName(alias); err != nil {
		return "", err
	}
	if strings.ContainsRune(alias, '/') {
		return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "alias %q would not be a /dev/mapper name", alias)
	}
	return fmt.Sprintf("multipaths {\n\tmultipath {\n\t\twwid %s\n\t\talias %s\n\t}\n}\n", wwid, alias), nil
}
