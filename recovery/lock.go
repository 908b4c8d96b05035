package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
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

// ErrFenceLockTimeout: the fence lock was not free within the wait.
var ErrFenceLockTimeout = errors.New("fence lock not free")

// LockFence takes the fence lock of vg (in the runtime directory, else the
// state directory), waiting at most wait: see lockFence.
func (d Deps) LockFence(ctx context.Context, vg string, wait time.Duration) (release func(), err error) {
	return lockFence(ctx, d.lockDir(), vg, wait)
}

// lockFence takes dir/fence-VG.lock, waiting at most wait. A fence holds it
// from its first journal write to its verdict; recovery and refresh_volume
// hold it around each step that loads a live table or resumes a VM, after
// checking under it that no new fence came. So a fence never interleaves
// with those steps, except when it gave up waiting: Fence waits one step at
// most and then goes on without it, since missing sanlock's grace resets
// the host.
func lockFence(ctx context.Context, dir, vg string, wait time.Duration) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "fence-"+vg+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: VG %s, waited %v", ErrFenceLockTimeout, vg, wait)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
