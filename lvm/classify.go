package lvm

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// exitFailed is lvm2's ECMD_FAILED: the exit code of every processing
// failure. Other codes (3 bad command line, 4 init failure) mean the agent
// or the host is broken, and stay ErrUnknown.
const exitFailed = 5

// rule maps stderr text to an error class. Rules are tried in order and the
// first match wins, so a line that explains a failure comes before the
// generic follow-up lines lvm2 prints after it: a killed lockspace prints
// "VG vol lock skipped: storage failed for sanlock leases" and then
// `Volume group "vol" not found`.
type rule struct {
	re    *regexp.Regexp
	class *errdefs.Class
}

// lvmlockd result numbers (daemons/lvmlockd/lvmlockd-client.h) that lvm2
// prints as "error -N" where it has no specific text.
const (
	errNoLockspace   = "210" // ENOLS
	errStarting      = "211" // ESTARTING
	errNoManager     = "214" // EMANAGER
	errVGKilled      = "217" // EVGKILLED
	errLockIO        = "218" // ELOCKIO
	errLockIOTimeout = "225" // EIOTIMEOUT
)

var rules = []rule{
	// Lease storage failed or the VG was killed: the lockspace is gone and
	// must be dropped and restarted (lib/locking/lvmlockd.c, all versions).
	{regexp.MustCompile(`storage (failed|errors) for sanlock leases|lock failed: io timeout|sanlock lease needs repair|error -(` + errVGKilled + `|` + errLockIO + `|` + errLockIOTimeout + `)\b`), errdefs.ErrLockspaceLost},
	{regexp.MustCompile(`lock (failed|skipped): lock start in progress|Global lock failed: lockspace is starting|error -` + errStarting + `\b`), errdefs.ErrLockStartInProgress},
	{regexp.MustCompile(`lvmlockd process is not running|start failed: lvmlockd (is not running|not available)|lock manager \S+ is not running|check that lvmlockd is running|Locking failed for LV |lvmlockd did not find one running|error -` + errNoManager + `\b`), errdefs.ErrLockManagerDown},
	// An LV lock conflict becomes *errdefs.LockConflictError; VG and global
	// lock conflicts are transient (lvm2 already retried them) and name no LV.
	{lockConflictRE, errdefs.ErrLockConflict},
	{regexp.MustCompile(`(VG \S+ lock failed|Global lock failed): held by other host`), errdefs.ErrLockConflict},
	{regexp.MustCompile(`LV is already locked with incompatible mode`), errdefs.ErrIncompatibleLockMode},
	{regexp.MustCompile(`Logical volume \S+ (in use\.|is used by another device|contains a filesystem in use)|stop failed: LVs must first be deactivated`), errdefs.ErrVolumeInUse},
	{regexp.MustCompile(`Logical Volume "[^"]*" already exists in volume group|name already in use`), errdefs.ErrVolumeExists},
	{regexp.MustCompile(`Insufficient free space|has insufficient free space|No space for sanlock lock`), errdefs.ErrInsufficientSpace},
	{regexp.MustCompile(`Failed to find logical volume|Logical volume \S+ not found in volume group`), errdefs.ErrVolumeNotFound},
	{regexp.MustCompile(`Volume group "[^"]*" not found`), errdefs.ErrVolumeGroupNotFound},
	// No lockspace: after --lock-stop, or before --lock-start. lvm2 prints
	// only the generic VG line in that case (recorded in run-04).
	{regexp.MustCompile(`lockspace is inactive|Cannot access VG \S+ due to failed lock|check that (global lockspace|VG holding global lock exists and) is started|error -` + errNoLockspace + `\b`), errdefs.ErrLockspaceNotStarted},
	{regexp.MustCompile(`not larger than existing size|New size of 0 not permitted|Size is not a multiple of 512`), errdefs.ErrInvalidArgument},
	// lvchange of a COW snapshot: it is (de)activated with its origin,
	// and lvm2's prompt gets no answer (lab, lvm2 2.03.16).
	{regexp.MustCompile(`Change of snapshot \S+ will also change its origin`), errdefs.ErrInvalidArgument},
}

// lockConflictRE matches an LV lock held by another host; lvm2 newer than
// 2.03.32 appends " (host_id N)" (_owner_str in lib/locking/lvmlockd.c).
var lockConflictRE = regexp.MustCompile(`(?m)LV locked by other host: ([^\s/]+)/(\S+?)(?: \(host_id (\d+)\))?[ \t]*$`)

// Classify maps a failed lvm command to an errdefs class. The *run.Error
// stays in the chain; unknown failures keep lvm's full stderr in the message.
func Classify(argv []string, err error) error {
	if err == nil {
		return nil
	}
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		return errdefs.Wrap(errdefs.ErrUnknown, err, fmt.Sprintf("%s: %v", cmdName(argv), err))
	}
	return classifyText(argv, rerr, rerr.Stderr)
}

// classifyText classifies rerr by text, which is its stderr or, in a batch,
// the lines that name one LV.
func classifyText(argv []string, rerr *run.Error, text string) error {
	name := cmdName(argv)
	switch {
	case rerr.TimedOut:
		return errdefs.Wrap(errdefs.ErrCommandTimeout, rerr, fmt.Sprintf("%s timed out and was killed%s", name, stderrSuffix(text)))
	case errors.Is(rerr, context.Canceled):
		return errdefs.Wrap(errdefs.ErrUnknown, rerr, name+" cancelled")
	case rerr.ExitCode != exitFailed:
		return errdefs.Wrap(errdefs.ErrUnknown, rerr, rerr.Error())
	}
	for _, r := range rules {
		if r.re == lockConflictRE {
			if m := r.re.FindStringSubmatch(text); m != nil {
				hostID, _ := strconv.Atoi(m[3])
				return &errdefs.LockConflictError{VG: m[1], LV: m[2], HostID: hostID, Cause: rerr}
			}
			continue
		}
		if loc := r.re.FindStringIndex(text); loc != nil {
			return errdefs.Wrap(r.class, rerr, fmt.Sprintf("%s: %s", name, lineAround(text, loc[0])))
		}
	}
	return errdefs.Wrap(errdefs.ErrUnknown, rerr, fmt.Sprintf("%s: exit status %d%s", name, rerr.ExitCode, stderrSuffix(text)))
}

func cmdName(argv []string) string {
	if len(argv) == 0 {
		return "lvm"
	}
	return strings.Join(argv, " ")
}

// stderrSuffix appends lvm's stderr verbatim (only trimmed): for an
// unclassified failure it is the whole diagnosis.
func stderrSuffix(text string) string {
	if t := strings.TrimSpace(text); t != "" {
		return ": " + t
	}
	return ""
}

// lineAround returns the trimmed line of text that contains offset i.
func lineAround(text string, i int) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		return strings.TrimSpace(text[start:])
	}
	return strings.TrimSpace(text[start : i+end])
}

// splitBatchStderr assigns each stderr line of a multi-LV lvchange to the
// requested LVs it names ("vol/lv1", "/dev/vol/lv1", `"vol/lv1"`); lines
// naming none of them are returned as rest. lvm2 prints display_lvname
// (vg/lv) in every per-LV message, often followed by a full stop, which is
// also a legal name character: an exact match is preferred.
func splitBatchStderr(vg string, lvs []string, stderr string) (perLV map[string][]string, rest []string) {
	wanted := make(map[string]bool, len(lvs))
	for _, lv := range lvs {
		wanted[lv] = true
	}
	perLV = map[string][]string{}
	prefix := vg + "/"
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		named := false
		for _, tok := range strings.FieldsFunc(line, func(r rune) bool { return r > 0x7f || !isNameChar(byte(r)) && r != '/' }) {
			for i := strings.Index(tok, prefix); i >= 0; {
				if i == 0 || tok[i-1] == '/' {
					lv := tok[i+len(prefix):]
					if j := strings.IndexByte(lv, '/'); j >= 0 {
						lv = lv[:j]
					}
					if !wanted[lv] {
						lv = strings.TrimRight(lv, ".")
					}
					if wanted[lv] {
						if l := perLV[lv]; len(l) == 0 || l[len(l)-1] != line {
							perLV[lv] = append(l, line)
						}
						named = true
					}
				}
				next := strings.Index(tok[i+1:], prefix)
				if next < 0 {
					break
				}
				i += 1 + next
			}
		}
		if !named {
			rest = append(rest, line)
		}
	}
	return perLV, rest
}
