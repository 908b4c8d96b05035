package scenario

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/sanlock"
)

// hostView is what one host could write and what it holds: its LV devices
// whose table still reaches the disk, and lvmlockd's lock on each LV, both
// keyed by LV uuid.
type hostView struct {
	name     string
	writable map[string]string // LV uuid → LV name
	locks    map[string]sanlock.LockMode
}

// view reads the host's dm tables and lvmlockd's locks: local queries that
// answer with the storage gone too.
func (r *Runner) view(ctx context.Context, h *host) (hostView, error) {
	v := hostView{name: h.name, writable: map[string]string{}}
	d := dm.New(h.runner.Runner, h.timeout)
	tables, err := d.Tables(ctx)
	if err != nil {
		return v, err
	}
	devs, err := d.Info(ctx)
	if err != nil {
		return v, err
	}
	uuids := map[string]string{}
	for _, dev := range devs {
		if u, ok := dm.LVUUID(dev.UUID); ok {
			uuids[dev.Name] = u
		}
	}
	for _, t := range tables {
		vg, lv, ok := dm.UserLV(t.Name)
		if !ok || vg != r.Cluster.VG() || t.Errored() {
			continue
		}
		u := uuids[t.Name]
		if u == "" {
			return v, fmt.Errorf("%s: no LV uuid for active device %s", h.name, t.Name)
		}
		v.writable[u] = lv
	}
	info, err := sanlock.NewLockCtl(h.runner.Runner, h.timeout).Info(ctx)
	if err != nil {
		return v, err
	}
	if vi := info.VG(r.Cluster.VG()); vi != nil {
		v.locks = vi.LVs
	}
	return v, nil
}

// checkWriters reads every host's view and returns the writers violations,
// or why the views could not be read.
func (r *Runner) checkWriters(ctx context.Context, hosts map[string]*host, n int) string {
	var views []hostView
	for i := 1; i <= n; i++ {
		v, err := r.view(ctx, hosts[fmt.Sprintf("h%d", i)])
		if err != nil {
			return fmt.Sprintf("cannot tell: %s: %v", v.name, err)
		}
		views = append(views, v)
	}
	return writers(views)
}

// writers checks the one property no schedule may break: an LV that can
// reach the disk from two hosts is held shared by both, and an LV that can
// reach the disk from a host without its lock is locked by no other host.
// It returns the violations found, sorted ("" when none).
func writers(views []hostView) string {
	var bad []string
	for i, a := range views {
		for u, lv := range a.writable {
			mine := a.locks[u]
			for j, b := range views {
				if i == j {
					continue
				}
				theirs := b.locks[u]
				_, bWrites := b.writable[u]
				switch {
				case bWrites && i < j && !(mine == sanlock.ModeSh && theirs == sanlock.ModeSh):
					bad = append(bad, fmt.Sprintf("%s writable on %s (lock %q) and %s (lock %q)", lv, a.name, mine, b.name, theirs))
				case mine == "" && theirs != "":
					bad = append(bad, fmt.Sprintf("%s writable on %s without a lock while %s holds it %s", lv, a.name, b.name, theirs))
				}
			}
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, "; ")
}
