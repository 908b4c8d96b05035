// Package virt reads and changes libvirt domains through virsh: which
// domains exist, their state and why, the block devices they use, and
// suspend/resume. Recovery uses it to resume only the guests whose volumes
// this host locked again. Every command goes through run.Runner.
package virt

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/internal/run"
)

// DefaultURI is the system hypervisor that nova-compute's domains live in.
const DefaultURI = "qemu:///system"

var (
	// ErrUnavailable: virsh is not installed or libvirtd does not answer.
	ErrUnavailable = errors.New("libvirt unavailable")
	// ErrNoDomain: the domain does not exist (any more).
	ErrNoDomain = errors.New("no such domain")
)

// State is a domain's state and the reason for it, as `virsh domstate
// --reason` prints them: "paused" with "I/O error", "user", ...
type State struct {
	State  string
	Reason string
}

func (s State) String() string {
	if s.Reason == "" {
		return s.State
	}
	return s.State + " (" + s.Reason + ")"
}

// PausedOnIOError reports whether the domain stopped itself because a disk
// returned an error (error_policy='stop'), as opposed to an operator's or a
// migration's pause, which recovery must leave alone.
func (s State) PausedOnIOError() bool { return s.State == "paused" && s.Reason == "I/O error" }

// Disk is one row of `virsh domblklist`.
type Disk struct {
	Target string // vda, sdb, ...
	Source string // path, or "-" for an empty drive
}

// Client runs virsh against one hypervisor URI.
type Client struct {
	r       run.Runner
	uri     string
	timeout time.Duration
}

// New returns a client for uri ("" means DefaultURI).
func New(r run.Runner, uri string, timeout time.Duration) *Client {
	if uri == "" {
		uri = DefaultURI
	}
	return &Client{r: r, uri: uri, timeout: timeout}
}

// Domains lists the names of every defined domain, running or not.
func (c *Client) Domains(ctx context.Context) ([]string, error) {
	out, err := c.virsh(ctx, "list", "--all", "--name")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	return names, nil
}

// State reads a domain's state and its reason.
func (c *Client) State(ctx context.Context, name string) (State, error) {
	out, err := c.virsh(ctx, "domstate", "--reason", name)
	if err != nil {
		return State{}, err
	}
	return ParseState(out)
}

// ParseState parses `virsh domstate --reason`: "paused (I/O error)".
func ParseState(b []byte) (State, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return State{}, fmt.Errorf("virsh domstate: empty output")
	}
	st, reason, ok := strings.Cut(s, " (")
	if !ok {
		return State{State: s}, nil
	}
	if !strings.HasSuffix(reason, ")") {
		return State{}, fmt.Errorf("virsh domstate: unexpected %q", s)
	}
	return State{State: st, Reason: strings.TrimSuffix(reason, ")")}, nil
}

// Disks lists a domain's block devices.
func (c *Client) Disks(ctx context.Context, name string) ([]Disk, error) {
	out, err := c.virsh(ctx, "domblklist", name)
	if err != nil {
		return nil, err
	}
	return ParseBlkList(out)
}

// ParseBlkList parses `virsh domblklist`: a "Target Source" header, a dash
// rule, then one row per disk.
func ParseBlkList(b []byte) ([]Disk, error) {
	lines := strings.Split(string(b), "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "---") {
		i++
	}
	if i == len(lines) {
		return nil, fmt.Errorf("virsh domblklist: no header rule in %q", b)
	}
	var disks []Disk
	for _, l := range lines[i+1:] {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
			continue
		case len(f) < 2:
			return nil, fmt.Errorf("virsh domblklist: short row %q", l)
		}
		// A source path with spaces is one field to libvirt, several here.
		disks = append(disks, Disk{Target: f[0], Source: strings.Join(f[1:], " ")})
	}
	return disks, nil
}

// DiskPolicy is what qemu does when one of a domain's disks returns an I/O
// error, from the domain's live XML: "stop" pauses the guest (recovery
// resumes it once its LV is locked again), "report" hands the error to the
// guest, whose filesystem may go read-only or worse, "ignore" drops it.
// "" leaves qemu's own default: an EIO is reported to the guest (qemu's
// werror=enospc pauses only when the host's storage is full).
type DiskPolicy struct {
	Target      string `json:"target"`
	Source      string `json:"source"`
	ErrorPolicy string `json:"error_policy"`
	// ReadErrorPolicy is rerror_policy, which defaults to ErrorPolicy.
	ReadErrorPolicy string `json:"rerror_policy"`
}

// DiskPolicies lists the error policies of a domain's disks.
func (c *Client) DiskPolicies(ctx context.Context, name string) ([]DiskPolicy, error) {
	out, err := c.virsh(ctx, "dumpxml", name)
	if err != nil {
		return nil, err
	}
	return ParseDiskPolicies(out)
}

// ParseDiskPolicies reads each <disk>'s <driver error_policy rerror_policy>
// and its source (dev, file or volume name) from `virsh dumpxml`.
func ParseDiskPolicies(b []byte) ([]DiskPolicy, error) {
	var dom struct {
		Disks []struct {
			Driver struct {
				ErrorPolicy     string `xml:"error_policy,attr"`
				ReadErrorPolicy string `xml:"rerror_policy,attr"`
			} `xml:"driver"`
			Source struct {
				Dev    string `xml:"dev,attr"`
				File   string `xml:"file,attr"`
				Volume string `xml:"volume,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"devices>disk"`
	}
	if err := xml.Unmarshal(b, &dom); err != nil {
		return nil, fmt.Errorf("virsh dumpxml: %w", err)
	}
	out := []DiskPolicy{}
	for _, d := range dom.Disks {
		p := DiskPolicy{Target: d.Target.Dev, Source: d.Source.Dev, ErrorPolicy: d.Driver.ErrorPolicy, ReadErrorPolicy: d.Driver.ReadErrorPolicy}
		if p.Source == "" {
			p.Source = d.Source.File + d.Source.Volume
		}
		if p.ReadErrorPolicy == "" {
			p.ReadErrorPolicy = p.ErrorPolicy
		}
		out = append(out, p)
	}
	return out, nil
}

// Suspend pauses a domain; a paused one stays paused.
func (c *Client) Suspend(ctx context.Context, name string) error {
	_, err := c.virsh(ctx, "suspend", name)
	return err
}

// Destroy stops a domain at once (pulls its plug); a domain not running
// is left as it is.
func (c *Client) Destroy(ctx context.Context, name string) error {
	_, err := c.virsh(ctx, "destroy", name)
	if err != nil && strings.Contains(err.Error(), "domain is not running") {
		return nil
	}
	return err
}

// Resume lets a paused domain run again; qemu retries the I/O that stopped
// it (error_policy='stop' keeps the failed requests).
func (c *Client) Resume(ctx context.Context, name string) error {
	_, err := c.virsh(ctx, "resume", name)
	return err
}

func (c *Client) virsh(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{"virsh", "-c", c.uri}, args...)
	res, err := c.r.Run(ctx, run.Cmd{Argv: argv, Timeout: c.timeout})
	if err != nil {
		return nil, classify(err)
	}
	return res.Stdout, nil
}

func classify(err error) error {
	var re *run.Error
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case errors.Is(re.Err, exec.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case strings.Contains(re.Stderr, "failed to get domain"):
		return fmt.Errorf("%w: %w", ErrNoDomain, err)
	case strings.Contains(re.Stderr, "failed to connect to the hypervisor"):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// LVOf tells which LV of vg a disk source is, for the two paths LVM
// creates (/dev/VG/LV and /dev/mapper/VG-LV).
func LVOf(source, vg string) (string, bool) {
	if lv, ok := strings.CutPrefix(source, "/dev/"+vg+"/"); ok && lv != "" && !strings.Contains(lv, "/") {
		return lv, true
	}
	if name, ok := strings.CutPrefix(source, "/dev/mapper/"); ok {
		if v, lv, layer, ok := dm.SplitLVMName(name); ok && v == vg && layer == "" {
			return lv, true
		}
	}
	return "", false
}
