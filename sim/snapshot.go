package sim

import (
	"fmt"
	"sort"
)

// Thick COW snapshots as lvm2 2.03.16 + lvmlockd handle them in a sanlock
// VG (recorded on lab guests, TestLab/cow-snapshot-locking and
// snapshot-methods): a snapshot has no lock of its own and goes with its
// origin, whose lock lvcreate -s takes; lvremove of a snapshot takes no
// lock at all (the hazard docs/rpc.md describes); lvremove of an origin
// takes its snapshots along; lvchange -asy of an origin keeps it exclusive.

// snapshotsOf lists the snapshots of origin, by name.
func (c *Cluster) snapshotsOf(origin string) []string {
	var out []string
	for name, l := range c.lvs {
		if l.origin == origin {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// lvcreateSnapshot is `lvcreate -s -n SNAP -L SIZE VG/ORIGIN`.
func (h *Host) lvcreateSnapshot(a *args, name string, bytes int64) reply {
	c := h.c
	originName, ok := c.splitLV(a.pos[0])
	o := c.lvs[originName]
	if !ok || o == nil {
		return fail(5, fmt.Sprintf("  Failed to find logical volume %q\n", a.pos[0]))
	}
	if o.origin != "" {
		return fail(5, "  Snapshots of snapshots are not supported.\n")
	}
	if r, refused := h.lockRefusal(); refused {
		return r
	}
	if c.lvs[name] != nil {
		return fail(5, fmt.Sprintf("  Logical Volume %q already exists in volume group %q\n", name, c.opt.VG))
	}
	if o.holders[h.spec.Name] == modeSh {
		return fail(5, fmt.Sprintf("  LV is already locked with incompatible mode: %s/%s\n", c.opt.VG, originName))
	}
	if len(h.rivals(o)) > 0 {
		return fail(5, fmt.Sprintf("  LV locked by other host: %s/%s\n  Failed to lock origin LV %s/%s.\n", c.opt.VG, originName, c.opt.VG, originName))
	}
	n := (bytes + c.opt.ExtentSize - 1) / c.opt.ExtentSize
	start, ok := c.allocate(n)
	if !ok || n > c.freeExtents() {
		return fail(5, fmt.Sprintf("  Volume group %q has insufficient free space (%d extents): %d required.\n", c.opt.VG, c.freeExtents(), n))
	}
	held := o.holders[h.spec.Name] == modeEx
	if !held {
		o.lver++ // locked for the command, released after it
	}
	snap := &lv{name: name, uuid: c.newUUID(), extents: n, segStart: start, origin: originName, holders: map[string]string{}}
	if c.dev != nil {
		if err := c.attachDevice(snap, o); err != nil {
			return fail(5, "  sim: backing device: "+err.Error()+"\n")
		}
	}
	c.lvs[name] = snap
	c.lvOrder = append(c.lvOrder, name)
	sort.Strings(c.lvOrder)
	h.bumpVG(2)
	if held && h.active[originName] != nil {
		h.active[name] = &dmLV{sectors: o.extents * c.opt.ExtentSize / sectorSize, offset: pvStartSectors + start*c.opt.ExtentSize/sectorSize}
	}
	return reply{stdout: fmt.Sprintf("  Logical volume %q created.\n", name)}
}

// followOrigin (de)activates an origin's snapshots with it.
func (h *Host) followOrigin(origin string) {
	c := h.c
	for _, s := range c.snapshotsOf(origin) {
		if h.active[origin] == nil {
			delete(h.active, s)
		} else if h.active[s] == nil {
			l := c.lvs[s]
			h.active[s] = &dmLV{sectors: c.lvs[origin].extents * c.opt.ExtentSize / sectorSize, offset: pvStartSectors + l.segStart*c.opt.ExtentSize/sectorSize}
		}
	}
}

// lvrename is `lvrename VG FROM TO`.
func (h *Host) lvrename(a *args) reply {
	c := h.c
	if len(a.pos) != 3 || a.pos[0] != c.opt.VG {
		return unsupported(append([]string{"lvrename"}, a.argv...))
	}
	from, to := a.pos[1], a.pos[2]
	l := c.lvs[from]
	if l == nil {
		return fail(5, fmt.Sprintf("  Existing logical volume %q not found in volume group %q\n", from, c.opt.VG))
	}
	if c.lvs[to] != nil {
		return fail(5, fmt.Sprintf("  Logical Volume %q already exists in volume group %q\n", to, c.opt.VG))
	}
	if r, refused := h.lockRefusal(); refused {
		return r
	}
	for _, other := range c.hosts {
		if other.active[from] != nil {
			return fail(5, fmt.Sprintf("  Cannot rename active LV %s/%s.\n", c.opt.VG, from))
		}
	}
	delete(c.lvs, from)
	l.name = to
	c.lvs[to] = l
	c.lvOrder = append(removeString(c.lvOrder, from), to)
	sort.Strings(c.lvOrder)
	for _, s := range c.snapshotsOf(from) {
		c.lvs[s].origin = to
	}
	h.bumpVG(2)
	return reply{stdout: fmt.Sprintf("  Renamed %q to %q in volume group %q\n", from, to, c.opt.VG)}
}
