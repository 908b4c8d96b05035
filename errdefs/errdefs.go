// Package errdefs defines the agent's error classes. Each class is a sentinel
// matched with errors.Is and maps one-to-one to the exception class name the
// RPC layer returns to oslo.messaging clients, so cinder's driver can catch
// RemoteError by exc_type without parsing messages.
package errdefs

import (
	"errors"
	"fmt"
)

// Class is an error class. Wrap it (fmt.Errorf("%w: ...", ErrX)) or use
// Errorf; never compare messages.
type Class struct {
	remote string
}

func (c *Class) Error() string { return c.remote }

// RemoteName is the exception class name sent over RPC.
func (c *Class) RemoteName() string { return c.remote }

var (
	ErrVolumeNotFound       = &Class{remote: "VolumeNotFound"}
	ErrVolumeGroupNotFound  = &Class{remote: "VolumeGroupNotFound"}
	ErrVolumeExists         = &Class{remote: "VolumeExists"}
	ErrLockConflict         = &Class{remote: "LockConflict"}
	ErrIncompatibleLockMode = &Class{remote: "IncompatibleLockMode"}
	ErrLockspaceNotStarted  = &Class{remote: "LockspaceNotStarted"}
	ErrLockStartInProgress  = &Class{remote: "LockStartInProgress"}
	ErrLockspaceLost        = &Class{remote: "LockspaceLost"}
	ErrLockManagerDown      = &Class{remote: "LockManagerUnavailable"}
	ErrVolumeInUse          = &Class{remote: "VolumeInUse"}
	ErrInvalidArgument      = &Class{remote: "InvalidArgument"}
	ErrInsufficientSpace    = &Class{remote: "InsufficientSpace"}
	ErrCommandTimeout       = &Class{remote: "CommandTimeout"}
	ErrRecoveryInProgress   = &Class{remote: "RecoveryInProgress"}
	ErrUnknown              = &Class{remote: "AgentError"}
)

// All lists every class, most specific first; ClassOf walks it in order.
var All = []*Class{
	ErrVolumeNotFound, ErrVolumeGroupNotFound, ErrVolumeExists, ErrLockConflict,
	ErrIncompatibleLockMode, ErrLockspaceNotStarted, ErrLockStartInProgress,
	ErrLockspaceLost, ErrLockManagerDown, ErrVolumeInUse, ErrInvalidArgument,
	ErrInsufficientSpace, ErrCommandTimeout, ErrRecoveryInProgress, ErrUnknown,
}

// ClassOf returns the class err belongs to, or ErrUnknown.
func ClassOf(err error) *Class {
	for _, c := range All {
		if errors.Is(err, c) {
			return c
		}
	}
	return ErrUnknown
}

// Errorf returns an error of class c with a formatted message.
func Errorf(c *Class, format string, args ...any) error {
	return &classError{class: c, msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of class c whose message is msg and whose chain also
// holds cause (so errors.As still finds e.g. a *run.Error underneath).
func Wrap(c *Class, cause error, msg string) error {
	return &classError{class: c, msg: msg, cause: cause}
}

type classError struct {
	class *Class
	msg   string
	cause error
}

func (e *classError) Error() string   { return e.msg }
func (e *classError) Unwrap() []error { return []error{e.class, e.cause} }

// LockConflictError is a LockConflict that names the holder when LVM printed
// it (lvm2 newer than 2.03.30 appends "(host_id N)"); HostID 0 means unknown.
type LockConflictError struct {
	VG, LV string
	HostID int
	Cause  error
}

func (e *LockConflictError) Error() string {
	if e.HostID > 0 {
		return fmt.Sprintf("LV %s/%s is locked by another host (host_id %d)", e.VG, e.LV, e.HostID)
	}
	return fmt.Sprintf("LV %s/%s is locked by another host", e.VG, e.LV)
}

func (e *LockConflictError) Unwrap() []error { return []error{ErrLockConflict, e.Cause} }

// RemoteKwargs gives RPC callers the lock holder as structured fields (the
// failure's kwargs), so they need not parse the message.
func (e *LockConflictError) RemoteKwargs() map[string]any {
	kw := map[string]any{"vg": e.VG, "lv": e.LV}
	if e.HostID > 0 {
		kw["host_id"] = e.HostID
	}
	return kw
}
