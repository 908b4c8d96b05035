package recovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aos-agent/aos-agent/internal/atomicfile"
	"github.com/aos-agent/aos-agent/state"
)

// Phase is where a fence stands. A journal left in PhaseFencing means the
// fence was interrupted (crash, kill): its LV list may be incomplete, so a
// restarted agent must look at the dm tables again.
type Phase string

const (
	PhaseFencing     Phase = "fencing"
	PhaseFenced      Phase = "fenced"
	PhaseFenceFailed Phase = "fence-failed"
)

const journalVersion = 1

// Journal is what a fence did, kept in StateDir/recovery-VG.json until a
// recovery has undone it.
type Journal struct {
	Version int    `json:"version"`
	VG      string `json:"vg"`
	// Generation counts the fences of the VG since its last complete
	// recovery: a fence that finds a journal (a recovery not finished, or
	// running) takes the next. With Started it names the fence, so a
	// running Recover can tell that a new fence replaced its journal.
	Generation int   `json:"generation"`
	Phase      Phase `json:"phase"`
	// BootID is the boot the fence ran in: a reboot since then settles the
	// journal (SettleEarlierBoot).
	BootID  string    `json:"boot_id,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// QueueingDisabled: `multipathd disablequeueing` was issued for
	// QueueingMap (every map when "": no map configured, or an older
	// agent's fence); recovery must restore queueing there.
	QueueingDisabled bool   `json:"queueing_disabled"`
	QueueingMap      string `json:"queueing_map,omitempty"`
	// FailIfNoPathMap got `fail_if_no_path`; restorequeueing undoes it too.
	FailIfNoPathMap string     `json:"fail_if_no_path_map,omitempty"`
	LVs             []FencedLV `json:"lvs"`
	Failures        []string   `json:"failures,omitempty"`
	// Domains are settled by Recover once every LV is.
	Domains []DomainOutcome `json:"domains,omitempty"`
}

// FencedLV is one top-level LV of the VG that was active when fencing began.
type FencedLV struct {
	LV     string `json:"lv"`
	Device string `json:"device"` // dm name
	// Mode and UUID come from the held record; Mode is "" for an LV the
	// agent did not activate (recovery must not re-acquire it).
	Mode   state.HeldMode `json:"mode,omitempty"`
	UUID   string         `json:"uuid,omitempty"`
	Fenced bool           `json:"fenced"` // error target verified (or device gone)
	Error  string         `json:"error,omitempty"`
	// Outcome is set by Recover once the LV is settled (OutcomeReacquired,
	// OutcomeLost, OutcomeNotHeld); "" means still to do.
	Outcome string `json:"outcome,omitempty"`
	// InUse: lvchange -an found the device open (its VM paused on the error
	// table), so it kept the error target through recovery.
	InUse bool `json:"in_use,omitempty"`
	// LeaseVersion is the version of the LV's exclusive sanlock lease when
	// the fence ran; 0 when shared or unknown.
	LeaseVersion uint64 `json:"lease_version,omitempty"`
	// Stale says why an LV re-acquired while in use must keep the error
	// table: another host held it meanwhile, or that cannot be ruled out.
	Stale string `json:"stale,omitempty"`
	// Refreshed: its table was reloaded after the re-acquire, so its VM may
	// resume.
	Refreshed bool `json:"refreshed,omitempty"`
}

// DomainOutcome is what recovery did with one libvirt domain that uses a
// fenced LV.
type DomainOutcome struct {
	Name    string   `json:"name"`
	LVs     []string `json:"lvs"`
	State   string   `json:"state"` // before recovery acted, with its reason
	Outcome string   `json:"outcome"`
	Why     string   `json:"why,omitempty"`
}

// sameFence reports whether a and b are the journal of one fence.
func sameFence(a, b *Journal) bool {
	return a.Generation == b.Generation && a.Started.Equal(b.Started)
}

// JournalPath is where the journal of vg lives under dir.
func JournalPath(dir, vg string) string { return filepath.Join(dir, "recovery-"+vg+".json") }

func writeJournal(dir string, j *Journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(JournalPath(dir, j.VG), append(b, '\n'), 0o600)
}

// journalDirs are where journals live: the state directory, and the
// runtime directory (tmpfs) for when the state directory cannot be
// written (a full or read-only file system): a fence nobody learns of
// would leave the host's VMs paused and its agent serving as if nothing
// had happened.
func (d Deps) journalDirs() []string {
	if d.RuntimeDir == "" || d.RuntimeDir == d.StateDir {
		return []string{d.StateDir}
	}
	return []string{d.StateDir, d.RuntimeDir}
}

// lockDir holds the fence lock: the runtime directory when there is one,
// which stays writable when the state directory is not, and whose locks
// need not outlive a boot.
func (d Deps) lockDir() string {
	if d.RuntimeDir != "" {
		return d.RuntimeDir
	}
	return d.StateDir
}

// saveJournal writes j to the first directory that takes it and removes
// any copy in the later ones, which would be older.
func saveJournal(dirs []string, j *Journal) error {
	var errs []error
	for i, dir := range dirs {
		err := writeJournal(dir, j)
		if err == nil {
			for _, later := range dirs[i+1:] {
				_ = os.Remove(JournalPath(later, j.VG))
			}
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FindJournal reads the journal of vg from the state directory or the
// runtime directory ("" for none); of two copies the later-updated wins.
func FindJournal(stateDir, runtimeDir, vg string) (*Journal, bool, error) {
	return findJournal(Deps{StateDir: stateDir, RuntimeDir: runtimeDir}.journalDirs(), vg)
}

func findJournal(dirs []string, vg string) (*Journal, bool, error) {
	var found *Journal
	var errs []error
	for _, dir := range dirs {
		j, ok, err := ReadJournal(dir, vg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok && (found == nil || j.Updated.After(found.Updated)) {
			found = j
		}
	}
	if found == nil && len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	return found, found != nil, nil
}

// removeJournal removes every copy of vg's journal.
func removeJournal(dirs []string, vg string) error {
	for _, dir := range dirs {
		if err := os.Remove(JournalPath(dir, vg)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// ReadJournal loads the journal of vg; ok is false when there is none
// (nothing was fenced, or recovery finished and removed it).
func ReadJournal(dir, vg string) (j *Journal, ok bool, err error) {
	path := JournalPath(dir, vg)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	j = &Journal{}
	if err := json.Unmarshal(b, j); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	if j.Version != journalVersion {
		return nil, false, fmt.Errorf("%s: unsupported version %d", path, j.Version)
	}
	return j, true, nil
}
