package volumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/state"
)

// Thick COW snapshots in a sanlock VG, within what lvmlockd guards (lab
// evidence in docs/rpc.md): a snapshot shares its origin's LV lock, so every
// step that touches a snapshot runs with the origin locked exclusively on
// this host; lvmlockd does that itself for lvcreate -s, the service does it
// for removal (lvmlockd does not, and a snapshot removed while another host
// writes its origin frees COW space still in use). Origins cannot be
// shared: multi-attach and live migration of a volume with snapshots are
// refused. Thin snapshots are not offered (a thin pool in a sanlock VG is
// usable by one host at a time).

// Snapshot describes a COW snapshot.
type Snapshot struct {
	VG        string `json:"volume_group"`
	Name      string `json:"snapshot_name"`
	Origin    string `json:"volume_name"`
	UUID      string `json:"uuid"`
	SizeBytes uint64 `json:"size_bytes"` // the origin's size, as the snapshot reads
	COWBytes  uint64 `json:"cow_bytes"`  // space for changed blocks
}

// Copier copies one device onto another (clone_volume).
type Copier interface {
	Copy(ctx context.Context, src, dst string, bytes uint64) error
}

// lockLVs serialises work on several LVs, taking them in name order so two
// requests naming the same pair cannot deadlock.
func (s *Service) lockLVs(ctx context.Context, refs ...Ref) (func(), error) {
	keys := make([]Ref, 0, len(refs))
	for _, r := range refs {
		if !slices.Contains(keys, r) {
			keys = append(keys, r)
		}
	}
	slices.SortFunc(keys, func(a, b Ref) int {
		if a.String() < b.String() {
			return -1
		}
		return 1
	})
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, r := range keys {
		u, err := s.lockLV(ctx, r)
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// snapshotOf describes snap after a lookup of it and its origin.
func (s *Service) snapshotOf(ctx context.Context, snap Ref) (Snapshot, error) {
	lv, err := s.find(ctx, snap)
	if err != nil {
		return Snapshot{}, err
	}
	out := Snapshot{VG: snap.VG, Name: snap.LV, Origin: lv.Origin, UUID: lv.UUID, COWBytes: lv.Size}
	if o, err := s.find(ctx, Ref{VG: snap.VG, LV: lv.Origin}); err == nil {
		out.SizeBytes = o.Size
	}
	return out, nil
}

// CreateSnapshot makes snap, a COW snapshot of origin (same VG) with
// cowGiB of space for changed blocks. The origin may be inactive (it stays
// so, and no lock is kept) or active exclusively here (a VM may be writing
// it; the snapshot is then active too). Held shared here, the origin cannot
// get a snapshot (IncompatibleLockMode); held by another host, lvmlockd
// refuses (LockConflict): create it on that host. An existing snapshot of
// the same origin is success.
func (s *Service) CreateSnapshot(ctx context.Context, snap Ref, origin string, cowGiB uint64) (Snapshot, error) {
	if cowGiB == 0 {
		return Snapshot{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "size must be at least 1 GiB")
	}
	if err := checkSize("size", cowGiB); err != nil {
		return Snapshot{}, err
	}
	o, err := s.Resolve(snap.VG, origin)
	if err != nil {
		return Snapshot{}, err
	}
	if o == snap {
		return Snapshot{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "a snapshot cannot have its origin's name %q", origin)
	}
	if err := checkNotReserved(snap.LV); err != nil {
		return Snapshot{}, err
	}
	if err := s.gate(); err != nil {
		return Snapshot{}, err
	}
	unlock, err := s.lockLVs(ctx, o, snap)
	if err != nil {
		return Snapshot{}, err
	}
	defer unlock()
	if existing, err := s.find(ctx, snap); err == nil {
		if existing.Origin != origin {
			return Snapshot{}, errdefs.Errorf(errdefs.ErrVolumeExists, "%s already exists and is not a snapshot of %s", snap, origin)
		}
		return s.snapshotOf(ctx, snap)
	} else if !errors.Is(err, errdefs.ErrVolumeNotFound) {
		return Snapshot{}, err
	}
	olv, err := s.find(ctx, o)
	if err != nil {
		return Snapshot{}, err
	}
	if olv.IsSnapshot() {
		return Snapshot{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s is itself a snapshot: snapshot its origin %s instead", o, olv.Origin)
	}
	if h, ok := s.held.Get(o.VG, o.LV); ok && h.Mode == state.Shared {
		return Snapshot{}, errdefs.Errorf(errdefs.ErrIncompatibleLockMode, "%s is attached shared here (multi-attach or migration): a snapshot needs its origin exclusive", o)
	}
	if err := s.lvm.CreateSnapshot(ctx, o.VG, snap.LV, o.LV, cowGiB*GiB); err != nil {
		return Snapshot{}, err
	}
	return s.snapshotOf(ctx, snap)
}

// withOriginExclusive runs f with origin locked exclusively on this host:
// as it is when held exclusive here, otherwise activated -aey for f and
// deactivated afterwards (the origin's snapshots follow it).
func (s *Service) withOriginExclusive(ctx context.Context, origin Ref, why string, f func() error) error {
	if h, ok := s.held.Get(origin.VG, origin.LV); ok {
		if h.Mode != state.Exclusive {
			return errdefs.Errorf(errdefs.ErrIncompatibleLockMode, "%s is held shared here: %s needs it exclusive", origin, why)
		}
		return f()
	}
	if err := s.activateTransient(ctx, lvm.Exclusive, origin); err != nil {
		return fmt.Errorf("%s needs origin %s exclusive here: %w", why, origin, err)
	}
	ferr := f()
	if err := s.releaseTransient(ctx, origin); err != nil && ferr == nil {
		ferr = fmt.Errorf("releasing origin %s after %s: %w", origin, why, err)
	}
	return ferr
}

// DeleteSnapshot removes snap with its origin locked exclusively here, so
// no other host can be writing through the COW space being freed: held by
// another host, the origin's lock refuses (LockConflict) and the driver
// deletes the snapshot on that host. A missing snapshot reports false.
func (s *Service) DeleteSnapshot(ctx context.Context, snap Ref) (bool, error) {
	if err := s.gate(); err != nil {
		return false, err
	}
	lv, err := s.find(ctx, snap)
	if errors.Is(err, errdefs.ErrVolumeNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !lv.IsSnapshot() {
		return false, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s is not a snapshot: delete it with delete_volume", snap)
	}
	origin := Ref{VG: snap.VG, LV: lv.Origin}
	unlock, err := s.lockLVs(ctx, origin, snap)
	if err != nil {
		return false, err
	}
	defer unlock()
	removed := false
	err = s.withOriginExclusive(ctx, origin, "deleting snapshot "+snap.String(), func() error {
		err := s.lvm.Remove(ctx, snap.VG, snap.LV)
		if errors.Is(err, errdefs.ErrVolumeNotFound) {
			return nil // removed by a concurrent retry
		}
		removed = err == nil
		return err
	})
	return removed, err
}

// cloneSuffix marks a clone being copied: the target gets its name only
// once the copy is complete, so a retry after a crash never returns a half
// copy as done. The copy also carries cloneTag, so the agent only ever
// discards LVs it made itself: an LV an operator named X.clone, or a
// snapshot or origin of that name, is refused instead.
const (
	cloneSuffix = ".clone"
	cloneTag    = "aos_agent_clone_copy"
)

// checkNotReserved refuses to create LVs whose names the agent uses for its
// clone copies.
func checkNotReserved(name string) error {
	if strings.HasSuffix(name, cloneSuffix) {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "volume name %q ends in %q, which the agent reserves for clones being copied", name, cloneSuffix)
	}
	return nil
}

// Clone creates target with source's data (a volume or a snapshot), at
// source's size or sizeGiB if larger, and leaves it inactive and unlocked.
// The source is read where it is: active here as it is; otherwise a plain
// volume is activated shared for the copy (other hosts may keep reading it;
// one holding it exclusive refuses with LockConflict), and a snapshot or an
// origin is read with the origin exclusive here. An existing target of the
// requested size is success (as for create_volume).
func (s *Service) Clone(ctx context.Context, target Ref, source string, sizeGiB uint64) (Volume, error) {
	src, err := s.Resolve(target.VG, source)
	if err != nil {
		return Volume{}, err
	}
	if src == target {
		return Volume{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "a clone cannot have its source's name %q", source)
	}
	if err := checkSize("size", sizeGiB); err != nil {
		return Volume{}, err
	}
	if err := checkNotReserved(target.LV); err != nil {
		return Volume{}, err
	}
	tmp := Ref{VG: target.VG, LV: target.LV + cloneSuffix}
	if err := lvm.ValidateLVName(tmp.LV); err != nil {
		return Volume{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "volume name %q is too long for a clone (the copy runs as %q): %v", target.LV, tmp.LV, err)
	}
	if err := s.gate(); err != nil {
		return Volume{}, err
	}
	srcLV, err := s.find(ctx, src)
	if err != nil {
		return Volume{}, err
	}
	readVia := src // the LV whose lock covers reading src
	srcBytes := srcLV.Size
	if srcLV.IsSnapshot() {
		// A snapshot reads as its origin; its own lv_size is the COW space.
		readVia = Ref{VG: src.VG, LV: srcLV.Origin}
		o, err := s.find(ctx, readVia)
		if err != nil {
			return Volume{}, err
		}
		srcBytes = o.Size
	}
	unlock, err := s.lockLVs(ctx, src, readVia, target, tmp)
	if err != nil {
		return Volume{}, err
	}
	defer unlock()
	want := max(sizeGiB*GiB, srcBytes)
	if sizeGiB != 0 && sizeGiB*GiB < srcBytes {
		return Volume{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "size %d GiB is smaller than the source %s (%d bytes)", sizeGiB, src, srcBytes)
	}
	if existing, err := s.find(ctx, target); err == nil {
		if existing.Size != want {
			return Volume{}, errdefs.Errorf(errdefs.ErrVolumeExists, "%s already exists with %d bytes, not %d", target, existing.Size, want)
		}
		return Volume{VG: target.VG, LV: target.LV, UUID: existing.UUID, SizeBytes: existing.Size}, nil
	} else if !errors.Is(err, errdefs.ErrVolumeNotFound) {
		return Volume{}, err
	}
	// A copy a crash interrupted: start it again, if it is the agent's.
	if lv, err := s.find(ctx, tmp); err == nil {
		if !lv.HasTag(cloneTag) || lv.IsSnapshot() || lv.IsOrigin() {
			return Volume{}, errdefs.Errorf(errdefs.ErrVolumeExists, "%s exists but is not a clone copy of the agent's (no tag %s, lv_attr %s): rename or remove it before cloning into %s", tmp, cloneTag, lv.Attr.Raw, target)
		}
		if err := s.discard(ctx, tmp); err != nil {
			return Volume{}, fmt.Errorf("removing the interrupted clone %s: %w", tmp, err)
		}
	} else if !errors.Is(err, errdefs.ErrVolumeNotFound) {
		return Volume{}, err
	}
	copyAll := func() error { return s.copyInto(ctx, tmp, src, srcBytes, want) }
	_, heldHere := s.held.Get(src.VG, src.LV)
	switch {
	case readVia != src || srcLV.IsOrigin():
		err = s.withOriginExclusive(ctx, readVia, "cloning "+src.String(), copyAll)
	case heldHere:
		err = copyAll()
	default:
		err = s.withSharedRead(ctx, src, copyAll)
	}
	if err != nil {
		return Volume{}, err
	}
	if err := s.lvm.Rename(ctx, tmp.VG, tmp.LV, target.LV); err != nil {
		return Volume{}, err
	}
	lv, err := s.find(ctx, target)
	if err != nil {
		return Volume{}, err
	}
	return Volume{VG: target.VG, LV: target.LV, UUID: lv.UUID, SizeBytes: lv.Size}, nil
}

// withSharedRead runs f with src activated shared here, then releases it.
func (s *Service) withSharedRead(ctx context.Context, src Ref, f func() error) error {
	if err := s.activateTransient(ctx, lvm.Shared, src); err != nil {
		return fmt.Errorf("reading %s for a clone: %w", src, err)
	}
	ferr := f()
	if err := s.releaseTransient(ctx, src); err != nil && ferr == nil {
		ferr = fmt.Errorf("releasing %s after the clone: %w", src, err)
	}
	return ferr
}

// copyInto creates tmp, copies srcBytes of src into it under an exclusive
// lock and leaves it inactive; on failure nothing of tmp remains.
func (s *Service) copyInto(ctx context.Context, tmp, src Ref, srcBytes, size uint64) error {
	if err := s.lvm.Create(ctx, tmp.VG, tmp.LV, size, cloneTag); err != nil {
		return err
	}
	err := func() error {
		if err := s.activateTransient(ctx, lvm.Exclusive, tmp); err != nil {
			return err
		}
		if s.copier == nil {
			return errdefs.Errorf(errdefs.ErrInvalidArgument, "this agent has no copier configured: clones are not available")
		}
		cerr := s.withCopySlot(ctx, func() error { return s.copier.Copy(ctx, src.DevicePath(), tmp.DevicePath(), srcBytes) })
		if err := s.releaseTransient(ctx, tmp); err != nil && cerr == nil {
			cerr = err
		}
		return cerr
	}()
	if err != nil {
		if derr := s.discard(ctx, tmp); derr != nil {
			s.log.Sugar().Errorf("clone copy %s failed and it could not be removed: %v", tmp, derr)
		}
		return fmt.Errorf("copying %s to %s: %w", src, tmp, err)
	}
	return nil
}

// discard deactivates (if active here) and removes an LV of the agent's
// own, also when the request was cancelled (a copy cut short by shutdown).
func (s *Service) discard(ctx context.Context, r Ref) error {
	if err := s.releaseTransient(ctx, r); err != nil {
		return err
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	return s.lvm.Remove(ctx, r.VG, r.LV)
}

// Copy copies bytes of src onto dst with dd, bypassing the page cache on
// both sides and syncing at the end, through the runner.
func (w CommandWiper) Copy(ctx context.Context, src, dst string, bytes uint64) error {
	timeout := w.Timeout
	if timeout == 0 {
		timeout = time.Hour
	}
	argv := []string{"dd", "if=" + src, "of=" + dst, "bs=4M", "count=" + strconv.FormatUint(bytes, 10),
		"iflag=direct,count_bytes", "oflag=direct", "conv=fsync", "status=none"}
	_, err := w.Runner.Run(ctx, run.Cmd{Argv: argv, Timeout: timeout})
	return err
}
