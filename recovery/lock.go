package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrBusy: another recovery of the VG is running (the daemon's automatic
// one, or an operator's `aos-agent recover`); two must never interleave
// their deactivations and re-acquisitions.
var ErrBusy = errors.New("another recovery of this VG is running")

// lockRecovery takes dir/recovery-VG.lock without waiting; the lock goes
// with the process, so a crashed recovery never blocks the next.
func lockRecovery(dir, vg string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "recovery-"+vg+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: VG %s", ErrBusy, vg)
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
