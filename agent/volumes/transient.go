package volumes

import (
	"context"
	"errors"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/state"
	"go.uber.org/zap"
)

// cleanupTimeout bounds the release of a request's transient activations.
// It runs on a context of its own: shutdown cancels a request after 30 s
// while its copy may run for an hour, and a release cut short would leave
// a lock here that other hosts then meet as LockConflict.
const cleanupTimeout = 2 * time.Minute

// cleanupContext outlives the request's cancellation, not its values.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// activateTransient activates r in mode for the length of one request and
// records it first, so a crash before the release is undone by Reconcile.
func (s *Service) activateTransient(ctx context.Context, mode lvm.ActivationMode, r Ref) error {
	if t := s.opts.Transient; t != nil {
		m := state.Exclusive
		if mode == lvm.Shared {
			m = state.Shared
		}
		if err := t.Set(state.HeldLV{VG: r.VG, LV: r.LV, Mode: m}); err != nil {
			return err
		}
	}
	if _, err := s.lvm.Activate(ctx, mode, r.VG, r.LV); err != nil {
		s.forgetTransient(r)
		return err
	}
	return nil
}

// releaseTransient deactivates r, however the request ended, and forgets
// it once it is released.
func (s *Service) releaseTransient(ctx context.Context, r Ref) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if _, err := s.lvm.Deactivate(ctx, r.VG, r.LV); err != nil && !errors.Is(err, errdefs.ErrVolumeNotFound) {
		return err
	}
	s.forgetTransient(r)
	return nil
}

func (s *Service) forgetTransient(r Ref) {
	if t := s.opts.Transient; t != nil {
		if err := t.Delete(r.VG, r.LV); err != nil {
			s.log.Error("transient activation released but still recorded", zap.Stringer("lv", r), zap.Error(err))
		}
	}
}

// Reconcile releases the transient activations a crash or a kill left
// behind (the agent calls it at start). An LV still open, or one held
// here for an attachment meanwhile, is left as it is and stays recorded
// only in the first case.
func (s *Service) Reconcile(ctx context.Context) error {
	t := s.opts.Transient
	if t == nil {
		return nil
	}
	var errs []error
	for _, lv := range t.List() {
		r := Ref{VG: lv.VG, LV: lv.LV}
		if _, held := s.held.Get(lv.VG, lv.LV); held {
			s.forgetTransient(r) // attached since: its lock is the attachment's now
			continue
		}
		if err := s.releaseTransient(ctx, r); err != nil {
			errs = append(errs, err)
			s.log.Error("left over from an interrupted request and could not be released", zap.Stringer("lv", r), zap.Error(err))
			continue
		}
		s.log.Warn("released an LV an interrupted request left active", zap.Stringer("lv", r), zap.String("mode", string(lv.Mode)))
	}
	return errors.Join(errs...)
}
