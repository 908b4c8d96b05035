package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// bootIDPath holds the kernel's random id of the running boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// CurrentBootID is the running boot's id, "" when unreadable.
func CurrentBootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// EarlierBootPath is where SettleEarlierBoot keeps the last settled journal
// of vg, for the operator's post-mortem.
func EarlierBootPath(dir, vg string) string {
	return filepath.Join(dir, "recovery-"+vg+".earlier-boot.json")
}

// SettleEarlierBoot retires vg's journal when a fence wrote it during an
// earlier boot. The reboot (the watchdog's reset after a failed fence, or
// any reboot after a fence) took every table and lock of the fence with
// it: nothing is left to undo, and a fence-failed journal could never be
// verified once lockstart re-activated the LVs, so it would block every
// change forever. The journal is kept as EarlierBootPath and returned; a
// journal of this boot, or one without a boot id (an older agent's), stays.
func SettleEarlierBoot(stateDir, runtimeDir, vg, bootID string) (*Journal, error) {
	if bootID == "" {
		return nil, errors.New("the running boot's id is unknown")
	}
	release, err := lockRecovery(stateDir, vg)
	if err != nil {
		return nil, err
	}
	defer release()
	dirs := Deps{StateDir: stateDir, RuntimeDir: runtimeDir}.journalDirs()
	j, ok, err := findJournal(dirs, vg)
	if err != nil || !ok || j.BootID == "" || j.BootID == bootID {
		return nil, err
	}
	if err := os.Rename(JournalPath(stateDir, vg), EarlierBootPath(stateDir, vg)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keeping the earlier boot's journal: %w", err)
	}
	if err := removeJournal(dirs, vg); err != nil {
		return nil, err
	}
	return j, nil
}
