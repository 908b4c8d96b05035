package lockstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// commandMachine is Machine over host commands. vgs and vgchange use local argv:
// lvm.Client has no PV-completeness report and its LockStart waits for the
// join, which would hide progress for minutes.
type commandMachine struct {
	r       run.Runner
	timeout time.Duration
	sanlock *sanlock.Client
	mpath   *multipath.Client
}

// NewMachine returns a Machine running commands with r; timeout bounds each one.
func NewMachine(r run.Runner, timeout time.Duration) Machine {
	return &commandMachine{
		r: r, timeout: timeout,
		sanlock: sanlock.New(r, timeout),
		mpath:   multipath.New(r, timeout),
	}
}

func (c *commandMachine) SanlockRunning(ctx context.Context) error {
	_, err := c.sanlock.Status(ctx)
	return err
}

func (c *commandMachine) LvmlockdRunning(ctx context.Context) error {
	res, err := c.r.Run(ctx, run.Cmd{Argv: sanlock.InfoArgv(), Timeout: c.timeout})
	// A lab guest's status poll recorded "Cannot connect to lvmlockd." with
	// rc=0, so the text decides, not only the exit status.
	if text := string(res.Stdout) + string(res.Stderr); err == nil && strings.Contains(text, "Cannot connect to lvmlockd") {
		return errdefs.Errorf(errdefs.ErrLockManagerDown, "lvmlockd: %s", lastLine(text))
	}
	if err != nil {
		return errdefs.Wrap(errdefs.ErrLockManagerDown, err, "lvmlockd not reachable: "+oneLine(err))
	}
	return nil
}

func (c *commandMachine) ActivePaths(ctx context.Context, alias string) (int, error) {
	m, err := findMap(ctx, c.mpath, alias)
	if err != nil {
		return 0, err
	}
	return len(m.ActivePaths()), nil
}

// findMap picks the alias out of `show maps json`, which (unlike `show map
// NAME`) tells a missing map from a failed query.
func findMap(ctx context.Context, mp *multipath.Client, alias string) (*multipath.Map, error) {
	maps, err := mp.Maps(ctx)
	if err != nil {
		return nil, err
	}
	for i := range maps {
		if maps[i].Name == alias {
			return &maps[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s", multipath.ErrMapNotFound, alias)
}

func (c *commandMachine) lvmCmd(ctx context.Context, argv ...string) (run.Result, error) {
	return c.r.Run(ctx, run.Cmd{Argv: argv, Timeout: c.timeout})
}

func (c *commandMachine) VGComplete(ctx context.Context, vg string) error {
	res, err := c.lvmCmd(ctx, "vgs", "--reportformat", "json", "-o", "vg_name,pv_count,vg_attr", vg)
	var rerr *run.Error
	if errors.As(err, &rerr) && strings.Contains(rerr.Stderr, "not found") {
		return errdefs.Wrap(errdefs.ErrVolumeGroupNotFound, err, "not visible: LUN or PVs not present yet")
	}
	if err != nil {
		return err
	}
	var rep struct {
		Report []struct {
			VG []struct {
				Name    string `json:"vg_name"`
				PVCount string `json:"pv_count"`
				Attr    string `json:"vg_attr"`
			} `json:"vg"`
		} `json:"report"`
	}
	if err := json.Unmarshal(res.Stdout, &rep); err != nil {
		return fmt.Errorf("vgs %s: %w", vg, err)
	}
	for _, r := range rep.Report {
		for _, row := range r.VG {
			if row.Name != vg {
				continue
			}
			// vg_attr's fourth character is 'p' while PVs are missing.
			if len(row.Attr) >= 4 && row.Attr[3] == 'p' {
				return fmt.Errorf("PVs missing: VG partial, %s PVs expected", row.PVCount)
			}
			if n, err := strconv.Atoi(row.PVCount); err != nil || n == 0 {
				return fmt.Errorf("no PV reported")
			}
			return nil
		}
	}
	return errdefs.Errorf(errdefs.ErrVolumeGroupNotFound, "not in the vgs report")
}

func (c *commandMachine) LockStart(ctx context.Context, vg string) error {
	_, err := c.lvmCmd(ctx, "vgchange", "--lock-start", "--lock-opt", "nowait", vg)
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		return err
	}
	switch {
	case strings.Contains(rerr.Stderr, "lease needs repair"):
		return ErrLeaseNeedsRepair
	case strings.Contains(rerr.Stderr, "start in progress"), strings.Contains(rerr.Stderr, "lockspace is starting"):
		return errdefs.Wrap(errdefs.ErrLockStartInProgress, err, "lock start in progress")
	case strings.Contains(rerr.Stderr, "is not running"), strings.Contains(rerr.Stderr, "not available"):
		return errdefs.Wrap(errdefs.ErrLockManagerDown, err, lastLine(rerr.Stderr))
	}
	return err
}

func (c *commandMachine) Lockspace(ctx context.Context, vg string) (LockspaceState, error) {
	st, err := c.sanlock.Status(ctx)
	if err != nil {
		return LockspaceAbsent, err
	}
	s := st.Lockspace(sanlock.LockspacePrefix + vg)
	switch {
	case s == nil:
		return LockspaceAbsent, nil
	case s.Pending == "ADD":
		return LockspaceJoining, nil
	case s.Pending != "":
		// Being left (REM): absent for our purpose; lock start will rejoin.
		return LockspaceAbsent, nil
	}
	return LockspaceJoined, nil
}

func (c *commandMachine) Activate(ctx context.Context, lv state.HeldLV) error {
	mode := lvm.Exclusive
	if lv.Mode == state.Shared {
		mode = lvm.Shared
	}
	// Run only passes LVs of configured VGs, so the lvm allow-list is that VG.
	_, err := lvm.New(c.r, lvm.Options{VolumeGroups: []string{lv.VG}, Timeout: c.timeout}).Activate(ctx, mode, lv.VG, lv.LV)
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
