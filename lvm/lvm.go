// Package lvm runs the LVM operations the agent needs on a shared (lvmlockd +
// sanlock) VG: JSON reports, lockspace start/stop, activation modes, create,
// remove, extend. Names are checked against lvm2's own rules and an allow-list
// of configured VGs before any command runs, and lvm's stderr is mapped to
// errdefs classes (Classify). Every command goes through run.Runner.
package lvm

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// Options configures a Client.
type Options struct {
	// VolumeGroups is the allow-list: a VG not listed is refused before any
	// command runs. Empty refuses every VG.
	VolumeGroups []string
	// Timeout bounds each command; 0 leaves the runner's default. A batch
	// activation is one command, so size it for the largest batch
	// (TestLabBatching: 9 s for 100 LVs under TCG).
	Timeout time.Duration
	// LockStartTimeout bounds vgchange --lock-start, which waits for the
	// sanlock host_id lease: ~20 s normally, minutes after an unclean
	// shutdown. 0 means DefaultLockStartTimeout.
	LockStartTimeout time.Duration
}

// DefaultLockStartTimeout leaves room for the "20 sec to 3 min" lvm2 itself
// announces for a sanlock lockspace start.
const DefaultLockStartTimeout = 5 * time.Minute

// maxSizeBytes keeps sizes exact: lvm2 parses -L with strtod, which is exact
// for integers only up to 2^53.
const maxSizeBytes = 1 << 53

// Client runs typed LVM operations through a runner.
type Client struct {
	r    run.Runner
	opts Options
}

// New returns a Client that runs commands with r.
func New(r run.Runner, opts Options) *Client {
	if opts.LockStartTimeout == 0 {
		opts.LockStartTimeout = DefaultLockStartTimeout
	}
	return &Client{r: r, opts: opts}
}

// ActivationMode is an activation mode under lvmlockd.
type ActivationMode int

const (
	// Exclusive activates with an exclusive LV lock (-aey): fails if any
	// other host holds the LV in any mode.
	Exclusive ActivationMode = iota + 1
	// Shared activates with a shared LV lock (-asy), for multi-attach and
	// live migration.
	Shared
)

func (m ActivationMode) flag() (string, error) {
	switch m {
	case Exclusive:
		return "-aey", nil
	case Shared:
		return "-asy", nil
	}
	return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "unknown activation mode %d", int(m))
}

func (m ActivationMode) String() string {
	switch m {
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

func (c *Client) run(ctx context.Context, timeout time.Duration, argv ...string) (run.Result, error) {
	return c.r.Run(ctx, run.Cmd{Argv: argv, Timeout: timeout})
}

// VGs reports the given VGs, or every configured VG when none is given.
func (c *Client) VGs(ctx context.Context, vgs ...string) ([]VG, error) {
	if len(vgs) == 0 {
		vgs = c.opts.VolumeGroups
		if len(vgs) == 0 {
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "no volume group configured")
		}
	}
	for _, vg := range vgs {
		if err := c.checkVG(vg); err != nil {
			return nil, err
		}
	}
	argv := append([]string{"vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", vgFields}, vgs...)
	res, err := c.run(ctx, c.opts.Timeout, argv...)
	if err != nil {
		return nil, Classify(argv, err)
	}
	return ParseVGs(res.Stdout)
}

// LVs reports the visible LVs of vg.
func (c *Client) LVs(ctx context.Context, vg string) ([]LV, error) {
	if err := c.checkVG(vg); err != nil {
		return nil, err
	}
	return c.lvs(ctx, vg)
}

// LV reports one LV; a missing LV is ErrVolumeNotFound.
func (c *Client) LV(ctx context.Context, vg, lv string) (LV, error) {
	if _, err := c.checkLVs(vg, []string{lv}); err != nil {
		return LV{}, err
	}
	lvs, err := c.lvs(ctx, fullName(vg, lv))
	if err != nil {
		return LV{}, err
	}
	if len(lvs) != 1 {
		return LV{}, errdefs.Errorf(errdefs.ErrUnknown, "lvs %s returned %d rows", fullName(vg, lv), len(lvs))
	}
	return lvs[0], nil
}

func (c *Client) lvs(ctx context.Context, target string) ([]LV, error) {
	argv := []string{"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", lvFields, target}
	res, err := c.run(ctx, c.opts.Timeout, argv...)
	if err != nil {
		return nil, Classify(argv, err)
	}
	return ParseLVs(res.Stdout)
}

// LockStart starts the VG's lockspace and waits until it is ready. lvm2
// treats an already started or starting lockspace as success.
func (c *Client) LockStart(ctx context.Context, vg string) error {
	if err := c.checkVG(vg); err != nil {
		return err
	}
	argv := []string{"vgchange", "--lock-start", vg}
	_, err := c.run(ctx, c.opts.LockStartTimeout, argv...)
	return Classify(argv, err)
}

// LockStop stops the VG's lockspace; with LVs still active lvm2 refuses
// (ErrVolumeInUse).
func (c *Client) LockStop(ctx context.Context, vg string) error {
	if err := c.checkVG(vg); err != nil {
		return err
	}
	argv := []string{"vgchange", "--lock-stop", vg}
	_, err := c.run(ctx, c.opts.Timeout, argv...)
	return Classify(argv, err)
}

// BatchResult tells, per LV, how one multi-LV lvchange ended. lvchange is not
// atomic over its arguments: it skips an LV it cannot lock, goes on with the
// others and exits 5 (recorded on a real guest: testdata/lab/
// lab-batch-conflict2.stderr).
type BatchResult struct {
	Changed []string         // LVs the command applied to, in request order
	Failed  map[string]error // a classified error per LV that was not changed
}

// Activate activates lvs of vg in mode with one lvchange. The error is nil
// only if every LV was activated; otherwise it joins the per-LV errors, and
// the result tells which LVs did change.
func (c *Client) Activate(ctx context.Context, mode ActivationMode, vg string, lvs ...string) (BatchResult, error) {
	flag, err := mode.flag()
	if err != nil {
		return BatchResult{}, err
	}
	return c.batch(ctx, flag, vg, lvs)
}

// Deactivate deactivates lvs of vg and releases their locks (-an) with one
// lvchange; results as for Activate.
func (c *Client) Deactivate(ctx context.Context, vg string, lvs ...string) (BatchResult, error) {
	return c.batch(ctx, "-an", vg, lvs)
}

func (c *Client) batch(ctx context.Context, flag, vg string, lvs []string) (BatchResult, error) {
	lvs, err := c.checkLVs(vg, lvs)
	if err != nil {
		return BatchResult{}, err
	}
	argv := []string{"lvchange", flag}
	for _, lv := range lvs {
		argv = append(argv, fullName(vg, lv))
	}
	_, err = c.run(ctx, c.opts.Timeout, argv...)
	if err == nil {
		return BatchResult{Changed: lvs}, nil
	}
	return batchResult(argv, vg, lvs, err)
}

// batchResult splits a failed batch by the LVs stderr names. When no
// requested LV is named (timeout, VG-level failure, unknown text), nothing
// tells which LVs changed, so all count as failed with the command's error.
func batchResult(argv []string, vg string, lvs []string, err error) (BatchResult, error) {
	res := BatchResult{Failed: map[string]error{}}
	var rerr *run.Error
	var perLV map[string][]string
	if errors.As(err, &rerr) && !rerr.TimedOut && rerr.ExitCode == exitFailed {
		perLV, _ = splitBatchStderr(vg, lvs, rerr.Stderr)
	}
	var errs []error
	if len(perLV) == 0 {
		whole := Classify(argv, err)
		for _, lv := range lvs {
			res.Failed[lv] = whole
		}
		return res, whole
	}
	for _, lv := range lvs {
		lines, failed := perLV[lv]
		if !failed {
			res.Changed = append(res.Changed, lv)
			continue
		}
		lvErr := classifyText(argv, rerr, strings.Join(lines, "\n"))
		res.Failed[lv] = lvErr
		errs = append(errs, lvErr)
	}
	return res, errors.Join(errs...)
}

// Refresh reloads the LVs' device-mapper tables from the metadata with one
// lvchange, e.g. on the hosts holding an LV shared after another host
// extended it; results as for Activate.
func (c *Client) Refresh(ctx context.Context, vg string, lvs ...string) (BatchResult, error) {
	return c.batch(ctx, "--refresh", vg, lvs)
}

// sizeArg renders a byte size for -L. lvm2 refuses byte sizes that are not
// a multiple of 512 (tools/lvmcmdline.c _size_arg), so round up: lvm2 rounds
// up to whole extents anyway.
func sizeArg(sizeBytes uint64) (string, error) {
	if sizeBytes == 0 || sizeBytes > maxSizeBytes {
		return "", errdefs.Errorf(errdefs.ErrInvalidArgument, "size %d bytes is outside 1..%d", sizeBytes, uint64(maxSizeBytes))
	}
	return strconv.FormatUint((sizeBytes+511)/512*512, 10) + "b", nil
}

// Create creates an LV and leaves it inactive, so the creating host keeps
// no LV lock. With -an lvm2 never zeroes the LV and warns "Logical volume
// VG/LV not zeroed." (exit 0; lib/metadata/lv_manip.c _should_wipe_lv); -Zn
// states that intent, as -Zy with -an is an error (tools/lvcreate.c
// _check_zero_parameters). -y answers the wipe-signature prompt.
//
// tags are added to the new LV (--addtag), e.g. to mark the agent's own
// temporaries.
func (c *Client) Create(ctx context.Context, vg, lv string, sizeBytes uint64, tags ...string) error {
	if _, err := c.checkLVs(vg, []string{lv}); err != nil {
		return err
	}
	size, err := sizeArg(sizeBytes)
	if err != nil {
		return err
	}
	argv := []string{"lvcreate", "-an", "-Zn", "-y", "-n", lv, "-L", size}
	for _, t := range tags {
		if !validTag(t) {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "invalid LVM tag %q", t)
		}
		argv = append(argv, "--addtag", t)
	}
	argv = append(argv, vg)
	_, err = c.run(ctx, c.opts.Timeout, argv...)
	return Classify(argv, err)
}

// validTag follows lvm2's tag rules (lib/misc/lvm-string.c validate_tag):
// 1..1024 of A-Z a-z 0-9 _ + . - / = ! : # &, not starting with '-'.
func validTag(t string) bool {
	if t == "" || len(t) > 1024 || t[0] == '-' {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_+.-/=!:#&", r)) {
			return false
		}
	}
	return true
}

// Remove removes an LV. An LV active on this host must be deactivated by the
// caller first; an open one is ErrVolumeInUse, one active on another host
// ErrLockConflict.
func (c *Client) Remove(ctx context.Context, vg, lv string) error {
	if _, err := c.checkLVs(vg, []string{lv}); err != nil {
		return err
	}
	argv := []string{"lvremove", "-y", fullName(vg, lv)}
	_, err := c.run(ctx, c.opts.Timeout, argv...)
	return Classify(argv, err)
}

// CreateSnapshot makes a thick COW snapshot of origin with sizeBytes of COW
// space. lvmlockd takes the origin's LV lock for it: held by another host
// is ErrLockConflict, held shared here ErrIncompatibleLockMode (lab, lvm2
// 2.03.16). An inactive origin stays inactive with its new snapshot and no
// lock is kept; an origin active exclusive here gets an active snapshot that
// shares its lock.
func (c *Client) CreateSnapshot(ctx context.Context, vg, snap, origin string, sizeBytes uint64) error {
	if _, err := c.checkLVs(vg, []string{snap, origin}); err != nil {
		return err
	}
	size, err := sizeArg(sizeBytes)
	if err != nil {
		return err
	}
	argv := []string{"lvcreate", "-s", "-n", snap, "-L", size, fullName(vg, origin)}
	_, err = c.run(ctx, c.opts.Timeout, argv...)
	return Classify(argv, err)
}

// Rename renames an LV within vg.
func (c *Client) Rename(ctx context.Context, vg, from, to string) error {
	if _, err := c.checkLVs(vg, []string{from, to}); err != nil {
		return err
	}
	argv := []string{"lvrename", vg, from, to}
	_, err := c.run(ctx, c.opts.Timeout, argv...)
	return Classify(argv, err)
}

// sameSizeRE is lvm2 2.03.16's refusal to "extend" to the current size (exit
// 5; newer lvm2 prints it and exits 0). Extend treats it as done, so a retry
// after a lost reply succeeds.
var sameSizeRE = regexp.MustCompile(`New size \(\d+ extents\) matches existing size`)

// Extend grows an LV to sizeBytes. sharedLock says the LV is held shared
// (by this or other hosts): lvm2 then needs --lockopt shupdate to use the
// shared lock instead of an exclusive one. norefresh is added because lvm2's
// remote refresh exists only for dlm (lvmlockd-core.c, LD_OP_REFRESH_LV) and
// otherwise can fail the command after the extend succeeded ("Failed to
// refresh LV on all hosts."): the caller runs Refresh on every other host
// holding the LV.
func (c *Client) Extend(ctx context.Context, vg, lv string, sizeBytes uint64, sharedLock bool) error {
	if _, err := c.checkLVs(vg, []string{lv}); err != nil {
		return err
	}
	size, err := sizeArg(sizeBytes)
	if err != nil {
		return err
	}
	argv := []string{"lvextend", "-L", size}
	if sharedLock {
		argv = append(argv, "--lockopt", "shupdate,norefresh")
	}
	argv = append(argv, fullName(vg, lv))
	_, err = c.run(ctx, c.opts.Timeout, argv...)
	var rerr *run.Error
	if errors.As(err, &rerr) && rerr.ExitCode == exitFailed && sameSizeRE.MatchString(rerr.Stderr) {
		return nil
	}
	return Classify(argv, err)
}
