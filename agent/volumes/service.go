// Package volumes is the volume service behind the RPC methods cinder's
// SharedLVM driver calls on one host: it validates requests, serialises them
// per LV, batches activations, keeps the held-LV record, and maps every
// failure to an errdefs class.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
	"go.uber.org/zap"
)

// RequestedMode is an activation mode as the RPC API names it.
type RequestedMode string

const (
	Exclusive RequestedMode = "exclusive"
	Shared    RequestedMode = "shared"
)

func (m RequestedMode) lvm() lvm.ActivationMode {
	if m == Shared {
		return lvm.Shared
	}
	return lvm.Exclusive
}

func (m RequestedMode) held() state.HeldMode {
	if m == Shared {
		return state.Shared
	}
	return state.Exclusive
}

// LVM is what the service needs from the lvm package.
type LVM interface {
	Activate(ctx context.Context, mode lvm.ActivationMode, vg string, lvs ...string) (lvm.BatchResult, error)
	Deactivate(ctx context.Context, vg string, lvs ...string) (lvm.BatchResult, error)
	Refresh(ctx context.Context, vg string, lvs ...string) (lvm.BatchResult, error)
	Create(ctx context.Context, vg, lv string, sizeBytes uint64, tags ...string) error
	Remove(ctx context.Context, vg, lv string) error
	Extend(ctx context.Context, vg, lv string, sizeBytes uint64, sharedLock bool) error
	CreateSnapshot(ctx context.Context, vg, snap, origin string, sizeBytes uint64) error
	Rename(ctx context.Context, vg, from, to string) error
	LVs(ctx context.Context, vg string) ([]lvm.LV, error)
	LV(ctx context.Context, vg, lv string) (lvm.LV, error)
}

// Locks reads the lock modes lvmlockd holds on this host: the only
// lock-aware source (lvs' activation fields are not), and whether a VG's
// lockspace was killed (its lease lost; --info still lists the old locks).
type Locks interface {
	Info(ctx context.Context) (*sanlock.Info, error)
	Dump(ctx context.Context) (*sanlock.Dump, error)
}

// Wiper overwrites an LV's data before deletion.
type Wiper interface {
	Wipe(ctx context.Context, devicePath string, method string, bytes uint64) error
}

// Options configure a Service.
type Options struct {
	VolumeGroups []string // allow-list; the first is the default VG
	// AllowedNames, if any, are the shell patterns (path.Match) every LV
	// name in a request must match, e.g. cinder's volume-* and _snapshot-*:
	// whoever can publish to the agents' topic can then touch no other LV.
	AllowedNames []string
	MaxBatch     int // LVs per lvchange; 0 means 100
	// CopySlots bounds the wipes and clone copies running at once (0
	// means 2): each streams a whole volume through the LUN that also
	// carries the sanlock leases.
	CopySlots int
	Logger    *zap.Logger
	// Gate is consulted before every mutating call; a non-nil error (e.g.
	// RecoveryInProgress) is returned at once without running anything.
	Gate func() error
	// Transient, if set, records the LVs activated for the length of one
	// request (state.OpenTransient), so a crash mid-request leaves no
	// lock behind: Reconcile releases them at the next start.
	Transient *state.Held
	// FenceGuard, if set, is held around a refresh, the one call that
	// loads a live table without an activation: a fence of the VG waits
	// for it, and it waits for a running fence (recovery.Deps.LockFence).
	FenceGuard func(ctx context.Context, vg string) (release func(), err error)
}

// Service serves one host.
type Service struct {
	lvm    LVM
	locks  Locks
	wiper  Wiper
	copier Copier // the wiper, when it can copy too
	held   *state.Held
	opts   Options
	log    *zap.Logger
	lvMu   *keyedMutex

	copySlots  chan struct{} // wipes and copies running
	activate   *groupCommit[batchKey, string, error]
	deactivate *groupCommit[string, string, error]
}

type batchKey struct {
	vg   string
	mode RequestedMode
}

// New returns a Service.
func New(l LVM, locks Locks, wiper Wiper, held *state.Held, opts Options) (*Service, error) {
	if len(opts.VolumeGroups) == 0 {
		return nil, errors.New("volumes: no volume groups configured")
	}
	for _, vg := range opts.VolumeGroups {
		if err := lvm.ValidateVGName(vg); err != nil {
			return nil, err
		}
	}
	for _, p := range opts.AllowedNames {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("volumes: allowed name pattern %q: %w", p, err)
		}
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 100
	}
	if opts.CopySlots == 0 {
		opts.CopySlots = 2
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Service{lvm: l, locks: locks, wiper: wiper, held: held, opts: opts, log: opts.Logger, lvMu: newKeyedMutex(),
		copySlots: make(chan struct{}, opts.CopySlots)}
	s.copier, _ = wiper.(Copier)
	s.activate = newGroupCommit(opts.MaxBatch, s.activateBatch)
	s.deactivate = newGroupCommit(opts.MaxBatch, s.deactivateBatch)
	return s, nil
}

// activateBatch is one lvchange for every LV waiting to be activated in a
// VG and mode; those it activated are recorded in held.json with one write.
func (s *Service) activateBatch(ctx context.Context, k batchKey, lvs []string) []error {
	res, err := s.lvm.Activate(ctx, k.mode.lvm(), k.vg, lvs...)
	errs := perLV(lvs, res, err)
	var rec []state.HeldLV
	for i, lv := range lvs {
		if errs[i] == nil {
			rec = append(rec, state.HeldLV{VG: k.vg, LV: lv, Mode: k.mode.held()})
		}
	}
	if len(rec) == 0 {
		return errs
	}
	if herr := s.held.Set(rec...); herr != nil {
		// Active and locked but not recorded: say so loudly, since after
		// a reboot lockstart would not re-activate them.
		s.log.Error("activated but could not record held LVs", zap.String("vg", k.vg), zap.Int("lvs", len(rec)), zap.Error(herr))
		notRecorded(errs, k.vg, "activated", herr)
	}
	return errs
}

// deactivateBatch is one lvchange -an for every LV waiting to be released in
// a VG; those it released leave held.json with one write.
func (s *Service) deactivateBatch(ctx context.Context, vg string, lvs []string) []error {
	res, err := s.lvm.Deactivate(ctx, vg, lvs...)
	errs := perLV(lvs, res, err)
	var done []string
	for i, lv := range lvs {
		if errs[i] == nil {
			done = append(done, lv)
		}
	}
	if len(done) == 0 {
		return errs
	}
	if herr := s.held.Delete(vg, done...); herr != nil {
		notRecorded(errs, vg, "deactivated", herr)
	}
	return errs
}

// notRecorded fails every member of a batch that succeeded on LVM when the
// held record could not follow: the caller must not believe it settled.
func notRecorded(errs []error, vg, what string, herr error) {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = fmt.Errorf("%s in VG %s but not recorded in the held-LV file: %w", what, vg, herr)
		}
	}
}

// perLV spreads a batch outcome over its members: LVM names each LV that
// failed on stderr and changes the others anyway, so one LV's conflict is
// not everyone's failure. An LV neither changed nor named shares the
// command's error.
func perLV(lvs []string, res lvm.BatchResult, err error) []error {
	out := make([]error, len(lvs))
	for i, lv := range lvs {
		if e, ok := res.Failed[lv]; ok {
			out[i] = e
		} else if err != nil && !slices.Contains(res.Changed, lv) {
			out[i] = err
		}
	}
	return out
}

// Ref names one LV of a configured VG.
type Ref struct {
	VG string
	LV string
}

func (r Ref) String() string { return r.VG + "/" + r.LV }

// DevicePath is where nova finds the block device.
func (r Ref) DevicePath() string { return "/dev/" + r.VG + "/" + r.LV }

// Resolve validates names and applies the default VG; nothing runs before
// this succeeds.
func (s *Service) Resolve(vg, lv string) (Ref, error) {
	if vg == "" {
		vg = s.opts.VolumeGroups[0]
	}
	if !s.allowed(vg) {
		return Ref{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "volume group %q is not managed by this agent (configured: %s)", vg, strings.Join(s.opts.VolumeGroups, ", "))
	}
	if err := lvm.ValidateLVName(lv); err != nil {
		return Ref{}, err
	}
	if !s.nameAllowed(lv) {
		return Ref{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "volume name %q matches none of [lvm] allowed_names (%s): this agent does not touch it", lv, strings.Join(s.opts.AllowedNames, ", "))
	}
	return Ref{VG: vg, LV: lv}, nil
}

func (s *Service) nameAllowed(lv string) bool {
	if len(s.opts.AllowedNames) == 0 {
		return true
	}
	for _, p := range s.opts.AllowedNames {
		if ok, _ := path.Match(p, lv); ok {
			return true
		}
	}
	return false
}

func (s *Service) allowed(vg string) bool {
	for _, v := range s.opts.VolumeGroups {
		if v == vg {
			return true
		}
	}
	return false
}

func (s *Service) gate() error {
	if s.opts.Gate == nil {
		return nil
	}
	return s.opts.Gate()
}

// lockLV serialises work on one LV.
func (s *Service) lockLV(ctx context.Context, r Ref) (func(), error) {
	unlock, err := s.lvMu.lock(ctx, r.String())
	if err != nil {
		return nil, errdefs.Wrap(errdefs.ErrCommandTimeout, err, fmt.Sprintf("%s: gave up waiting for an earlier request on the same volume", r))
	}
	return unlock, nil
}

// Activation is the result of Activate.
type Activation struct {
	DevicePath string        `json:"device_path"`
	Mode       RequestedMode `json:"mode"`
	VG         string        `json:"volume_group"`
	LV         string        `json:"volume_name"`
}

// Activate makes r usable here in mode. lvchange is idempotent for the mode
// already held and converts between modes in place (ex→sh always, sh→ex
// when no other host holds it), so the service runs it without a costly
// state probe first; concurrent activations share one lvchange per mode.
func (s *Service) Activate(ctx context.Context, r Ref, mode RequestedMode) (Activation, error) {
	if mode != Exclusive && mode != Shared {
		return Activation{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "mode must be %q or %q, not %q", Exclusive, Shared, mode)
	}
	if err := s.gate(); err != nil {
		return Activation{}, err
	}
	unlock, err := s.lockLV(ctx, r)
	if err != nil {
		return Activation{}, err
	}
	defer unlock()
	if mode == Shared {
		if err := s.checkShareable(ctx, r); err != nil {
			return Activation{}, err
		}
	}
	// The batch records the LVs it activated in held.json, one write for
	// all of them.
	if err := s.activate.do(ctx, batchKey{vg: r.VG, mode: mode}, r.LV); err != nil {
		return Activation{}, err
	}
	return Activation{DevicePath: r.DevicePath(), Mode: mode, VG: r.VG, LV: r.LV}, nil
}

// checkShareable refuses shared activation of COW snapshots and their
// origins up front: lvm2 answers `lvchange -asy` of an origin with success
// but keeps the lock exclusive (lab), which would break a migration halfway.
func (s *Service) checkShareable(ctx context.Context, r Ref) error {
	lv, err := s.find(ctx, r)
	if err != nil {
		return err
	}
	switch {
	case lv.IsSnapshot():
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s is a snapshot: snapshots are not attached (clone it)", r)
	case lv.IsOrigin():
		return errdefs.Errorf(errdefs.ErrIncompatibleLockMode, "%s has snapshots: it can only be held exclusively (no multi-attach or live migration until they are deleted)", r)
	}
	return nil
}

// Deactivate releases r here. An LV still open (a VM uses it) is refused by
// LVM itself and comes back as VolumeInUse; an inactive LV is a no-op.
func (s *Service) Deactivate(ctx context.Context, r Ref) error {
	if err := s.gate(); err != nil {
		return err
	}
	unlock, err := s.lockLV(ctx, r)
	if err != nil {
		return err
	}
	defer unlock()
	return s.deactivate.do(ctx, r.VG, r.LV)
}

// Refresh reloads r's device-mapper table after an extend made on another
// host (sanlock VGs have no remote refresh). lvm2 reloads a table without
// taking any lock, over a fence's error target too (lab), so the refresh
// runs only behind the gate and only while lvmlockd holds the LV's lock
// here: on a fenced host another host may hold the volume by now. A volume
// this host holds no lock on needs no refresh and reports false, unless
// held.json says it is active here: then its lock was lost, and that is
// an error.
func (s *Service) Refresh(ctx context.Context, r Ref) (bool, error) {
	unlock, err := s.lockLV(ctx, r)
	if err != nil {
		return false, err
	}
	defer unlock()
	if s.opts.FenceGuard != nil {
		release, err := s.opts.FenceGuard(ctx, r.VG)
		if err != nil {
			return false, err
		}
		defer release()
	}
	if err := s.gate(); err != nil {
		return false, err
	}
	lv, err := s.find(ctx, r)
	if err != nil {
		return false, err
	}
	mode, err := s.lockHere(ctx, r.VG, lv.UUID)
	if err != nil {
		return false, err
	}
	if !mode.Held() {
		if _, held := s.held.Get(r.VG, r.LV); held {
			return false, errdefs.Errorf(errdefs.ErrLockspaceLost, "%s is recorded as active here but lvmlockd holds no lock on it (fenced?): refresh refused, another host may hold it", r)
		}
		return false, nil
	}
	if _, err := s.lvm.Refresh(ctx, r.VG, r.LV); err != nil {
		return false, err
	}
	return true, nil
}

// lockHere is the lock lvmlockd holds on the LV with uuid on this host.
// With the VG's lockspace killed (lease lost) or not started, this host
// can hold none, whatever --info still lists.
func (s *Service) lockHere(ctx context.Context, vg, uuid string) (sanlock.LockMode, error) {
	dump, err := s.locks.Dump(ctx)
	if err != nil {
		return "", err
	}
	if ls := dump.Lockspace(vg); ls != nil && ls.KillVG() {
		return "", errdefs.Errorf(errdefs.ErrLockspaceLost, "lockspace of VG %s was killed on this host: its lease storage is lost", vg)
	}
	info, err := s.locks.Info(ctx)
	if err != nil {
		return "", err
	}
	v := info.VG(vg)
	if v == nil {
		return "", errdefs.Errorf(errdefs.ErrLockspaceNotStarted, "lockspace of VG %s is not started on this host: it holds no lock in it", vg)
	}
	return v.LVs[uuid], nil
}

// GiB is the unit cinder sizes volumes in.
const GiB = 1 << 30

// maxGiB is LVM's largest LV (8 EiB): a larger size would also wrap
// around in bytes (2^34+1 GiB is 1 GiB).
const maxGiB = 1 << 33

// checkSize refuses what no VG can hold before anything runs; sizes
// beyond the VG's free space are LVM's to refuse (InsufficientSpace).
func checkSize(what string, gib uint64) error {
	if gib > maxGiB {
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "%s %d GiB is beyond LVM's largest volume (%d GiB)", what, gib, uint64(maxGiB))
	}
	return nil
}

// Volume describes one LV for list_volumes and create_volume.
type Volume struct {
	VG         string `json:"volume_group"`
	LV         string `json:"volume_name"`
	UUID       string `json:"uuid"`
	SizeBytes  uint64 `json:"size_bytes"`
	ActiveHere bool   `json:"active_here"`
	// Mode is the lock this host holds: "exclusive", "shared" or "" (none).
	Mode RequestedMode `json:"mode,omitempty"`
}

// find returns r's LV, or VolumeNotFound.
func (s *Service) find(ctx context.Context, r Ref) (lvm.LV, error) {
	return s.lvm.LV(ctx, r.VG, r.LV)
}

// Create makes r with sizeGiB, inactive and unlocked everywhere (the cinder
// host must not keep the lock). Creating an existing LV of the same size
// succeeds, so a retried request is harmless.
func (s *Service) Create(ctx context.Context, r Ref, sizeGiB uint64) (Volume, error) {
	if sizeGiB == 0 {
		return Volume{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "size must be at least 1 GiB")
	}
	if err := checkSize("size", sizeGiB); err != nil {
		return Volume{}, err
	}
	if err := checkNotReserved(r.LV); err != nil {
		return Volume{}, err
	}
	if err := s.gate(); err != nil {
		return Volume{}, err
	}
	unlock, err := s.lockLV(ctx, r)
	if err != nil {
		return Volume{}, err
	}
	defer unlock()
	want := sizeGiB * GiB
	if err := s.lvm.Create(ctx, r.VG, r.LV, want); err != nil {
		if !errors.Is(err, errdefs.ErrVolumeExists) {
			return Volume{}, err
		}
		lv, ferr := s.find(ctx, r)
		if ferr != nil {
			return Volume{}, err
		}
		if lv.Size != want {
			return Volume{}, errdefs.Wrap(errdefs.ErrVolumeExists, err, fmt.Sprintf("volume %s already exists with %d bytes, not %d", r, lv.Size, want))
		}
	}
	lv, err := s.find(ctx, r)
	if err != nil {
		return Volume{}, err
	}
	return Volume{VG: r.VG, LV: r.LV, UUID: lv.UUID, SizeBytes: lv.Size}, nil
}

// Clear methods for Delete.
const (
	ClearNone  = "none"
	ClearZero  = "zero"
	ClearShred = "shred"
)

// Delete removes r, first overwriting its data when asked. A volume active
// on this host is refused (detach first); one active on another host is
// refused by its lock (LockConflict). Deleting a missing volume succeeds and
// reports false, so a retried request is harmless.
func (s *Service) Delete(ctx context.Context, r Ref, clear string, clearBytes uint64) (bool, error) {
	if clear != ClearNone && clear != ClearZero && clear != ClearShred {
		return false, errdefs.Errorf(errdefs.ErrInvalidArgument, "clear must be none, zero or shred, not %q", clear)
	}
	if err := s.gate(); err != nil {
		return false, err
	}
	unlock, err := s.lockLV(ctx, r)
	if err != nil {
		return false, err
	}
	defer unlock()
	if h, ok := s.held.Get(r.VG, r.LV); ok {
		return false, errdefs.Errorf(errdefs.ErrVolumeInUse, "volume %s is active on this host (%s lock): deactivate it first", r, h.Mode)
	}
	lv, err := s.find(ctx, r)
	if errors.Is(err, errdefs.ErrVolumeNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// held.json knows only what the agent activated: a device here that an
	// operator or an interrupted request left (a VM may have it open) must
	// not be wiped or removed either.
	if lv.Attr.State != '-' || lv.Attr.DeviceOpen || lv.ActiveLocally || lv.DeviceOpen {
		return false, errdefs.Errorf(errdefs.ErrVolumeInUse, "volume %s has a device on this host (lv_attr %s) that the agent did not activate: deactivate it first", r, lv.Attr.Raw)
	}
	// On real lvm2 2.03.16 (lab): lvremove of an origin also removes its
	// snapshots, and a snapshot is removed even while another host has its
	// origin active; delete_snapshot guards that, delete_volume never does it.
	if lv.IsSnapshot() {
		return false, errdefs.Errorf(errdefs.ErrVolumeInUse, "%s is a COW snapshot (lv_attr %s): delete it with delete_snapshot", r, lv.Attr.Raw)
	}
	if lv.IsOrigin() {
		return false, errdefs.Errorf(errdefs.ErrVolumeInUse, "volume %s has snapshots (lv_attr %s): delete them with delete_snapshot first", r, lv.Attr.Raw)
	}
	if clear != ClearNone {
		if err := s.wipe(ctx, r, lv, clear, clearBytes); err != nil {
			return false, err
		}
	}
	if err := s.lvm.Remove(ctx, r.VG, r.LV); err != nil {
		return false, err
	}
	return true, nil
}

// wipe overwrites the LV under a local exclusive lock, which also proves no
// other host has it active.
func (s *Service) wipe(ctx context.Context, r Ref, lv lvm.LV, method string, clearBytes uint64) error {
	if clearBytes == 0 || clearBytes > lv.Size {
		clearBytes = lv.Size
	}
	if err := s.activateTransient(ctx, lvm.Exclusive, r); err != nil {
		return err
	}
	werr := s.withCopySlot(ctx, func() error { return s.wiper.Wipe(ctx, r.DevicePath(), method, clearBytes) })
	if err := s.releaseTransient(ctx, r); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("clearing %s: %w", r, werr)
	}
	return nil
}

// Extension is the result of Extend.
type Extension struct {
	SizeBytes uint64 `json:"size_bytes"`
	// RefreshOthers is true when other hosts may have the LV active (it was
	// extended under a shared lock) and must run lvchange --refresh.
	RefreshOthers bool `json:"refresh_others"`
}

// Extend grows r to newGiB. Inactive or exclusive here: a plain lvextend.
// Shared (here or elsewhere): lvextend --lockopt shupdate, after which every
// other host with the LV active must refresh it. Shrinking is refused.
func (s *Service) Extend(ctx context.Context, r Ref, newGiB uint64) (Extension, error) {
	if err := checkSize("new size", newGiB); err != nil {
		return Extension{}, err
	}
	if err := s.gate(); err != nil {
		return Extension{}, err
	}
	unlock, err := s.lockLV(ctx, r)
	if err != nil {
		return Extension{}, err
	}
	defer unlock()
	lv, err := s.find(ctx, r)
	if err != nil {
		return Extension{}, err
	}
	want := newGiB * GiB
	switch {
	case want < lv.Size:
		return Extension{}, errdefs.Errorf(errdefs.ErrInvalidArgument, "volume %s has %d bytes; shrinking to %d is not supported", r, lv.Size, want)
	case want == lv.Size:
		return Extension{SizeBytes: lv.Size}, nil
	}
	h, heldHere := s.held.Get(r.VG, r.LV)
	shared := heldHere && h.Mode == state.Shared
	err = s.lvm.Extend(ctx, r.VG, r.LV, want, shared)
	if err != nil && !heldHere && errors.Is(err, errdefs.ErrLockConflict) {
		// Another host holds it; if that lock is shared (multi-attach),
		// shupdate can extend beside it. An exclusive holder still refuses.
		shared = true
		err = s.lvm.Extend(ctx, r.VG, r.LV, want, true)
	}
	if err != nil {
		return Extension{}, err
	}
	return Extension{SizeBytes: want, RefreshOthers: shared}, nil
}

// List returns the VG's volumes with the lock this host holds on each, read
// from lvmlockd and matched by LV uuid.
func (s *Service) List(ctx context.Context, vg string) ([]Volume, error) {
	if vg == "" {
		vg = s.opts.VolumeGroups[0]
	}
	lvs, modes, err := s.lvsAndLocks(ctx, vg)
	if err != nil {
		return nil, err
	}
	out := make([]Volume, 0, len(lvs))
	for _, lv := range lvs {
		mode := modes[lv.UUID]
		out = append(out, Volume{VG: vg, LV: lv.Name, UUID: lv.UUID, SizeBytes: lv.Size, Mode: mode, ActiveHere: mode != ""})
	}
	return out, nil
}

// lvsAndLocks reads vg's LVs and, by LV uuid, the lock lvmlockd holds on
// each here (LVs without one are absent from the map).
func (s *Service) lvsAndLocks(ctx context.Context, vg string) ([]lvm.LV, map[string]RequestedMode, error) {
	if !s.allowed(vg) {
		return nil, nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "volume group %q is not managed by this agent", vg)
	}
	lvs, err := s.lvm.LVs(ctx, vg)
	if err != nil {
		return nil, nil, err
	}
	info, err := s.locks.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	modes := map[string]RequestedMode{}
	if v := info.VG(vg); v != nil {
		for uuid, m := range v.LVs {
			switch m {
			case sanlock.ModeEx:
				modes[uuid] = Exclusive
			case sanlock.ModeSh:
				modes[uuid] = Shared
			}
		}
	}
	return lvs, modes, nil
}
