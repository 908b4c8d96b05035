package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassOfFollowsWrapping(t *testing.T) {
	cause := errors.New("exit status 5")
	err := fmt.Errorf("activate vol/a: %w", Wrap(ErrLockConflict, cause, "locked"))
	if got := ClassOf(err); got != ErrLockConflict {
		t.Fatalf("ClassOf = %v", got)
	}
	if !errors.Is(err, cause) {
		t.Fatal("cause lost from chain")
	}
	if ClassOf(errors.New("plain")) != ErrUnknown {
		t.Fatal("plain error must be unknown")
	}
}

func TestRemoteNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range All {
		if seen[c.RemoteName()] {
			t.Fatalf("duplicate remote name %s", c.RemoteName())
		}
		seen[c.RemoteName()] = true
	}
}

func TestLockConflictError(t *testing.T) {
	err := error(&LockConflictError{VG: "vol", LV: "v1", HostID: 2})
	if !errors.Is(err, ErrLockConflict) {
		t.Fatalf("LockConflictError must be a LockConflict: err = %v, want ErrLockConflict", err)
	}
	if ClassOf(err).RemoteName() != "LockConflict" {
		t.Fatalf("LockConflictError must be a LockConflict: ClassOf(err).RemoteName() = %q, want \"LockConflict\"", ClassOf(err).RemoteName())
	}
	var lc *LockConflictError
	if !errors.As(fmt.Errorf("x: %w", err), &lc) {
		t.Fatal("holder host_id lost: errors.As(fmt.Errorf(\"x: %%w\", err), &lc) = false, want true")
	}
	if lc.HostID != 2 {
		t.Fatalf("holder host_id lost: lc.HostID = %v, want 2", lc.HostID)
	}
	if Errorf(ErrInvalidArgument, "bad %s", "name").Error() != "bad name" {
		t.Fatal("Errorf message")
	}
}

func TestLockConflictRemoteKwargs(t *testing.T) {
	kw := (&LockConflictError{VG: "vg", LV: "lv", HostID: 4}).RemoteKwargs()
	if kw["host_id"] != 4 {
		t.Errorf("kw[\"host_id\"] = %v, want 4", kw["host_id"])
	}
	if kw["vg"] != "vg" {
		t.Errorf("kw[\"vg\"] = %q, want \"vg\"", kw["vg"])
	}
	if kw["lv"] != "lv" {
		t.Errorf("kw[\"lv\"] = %q, want \"lv\"", kw["lv"])
	}
	if _, ok := (&LockConflictError{VG: "vg", LV: "lv"}).RemoteKwargs()["host_id"]; ok {
		t.Error("unknown holder must not be sent as host_id")
	}
}
