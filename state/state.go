// Package state keeps what the agent must remember across restarts and
// crashes under its state directory (/var/lib/aos-agent): the LVs this host
// holds and their lock modes, so lockstart re-activates exactly those after a
// reboot, and recovery knows what to re-lock. Every write is atomic.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aos-agent/aos-agent/internal/atomicfile"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// HeldMode is an LV lock mode as recorded: "ex" or "sh".
type HeldMode string

const (
	Exclusive HeldMode = "ex"
	Shared    HeldMode = "sh"
)

// HeldLV is one LV active on this host with its lock mode.
type HeldLV struct {
	VG   string   `json:"vg"`
	LV   string   `json:"lv"`
	UUID string   `json:"uuid,omitempty"`
	Mode HeldMode `json:"mode"`
	// Since is when this host took the lock in this mode (the cluster
	// view's "since when"); Set fills it in. Zero in files written before
	// it existed.
	Since time.Time `json:"since,omitzero"`
}

type heldFile struct {
	Version int      `json:"version"`
	LVs     []HeldLV `json:"lvs"`
}

const (
	heldName      = "held.json"
	transientName = "transient.json"
)

// Held is the persistent set of LVs held here, keyed by VG/LV. Several
// processes share the file (the daemon, `aos-agent recover`, lockstart), so
// a change is a read-modify-write under an flock on a sibling lock file, and
// reads pick up what another process wrote: a recovery that drops a LOST LV
// must not be undone by the daemon's next write from a stale copy.
type Held struct {
	path string
	mu   sync.Mutex
	lvs  map[string]HeldLV
	seen fileID // identity of the file lvs was read from
}

// fileID tells whether held.json was replaced: every write renames a new
// inode into place.
type fileID struct {
	ino, size uint64
	mtime     int64
	exists    bool
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileID{}, nil
	}
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: uint64(fi.Size()), mtime: fi.ModTime().UnixNano(), exists: true}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id, nil
}

// OpenHeld loads dir/held.json; a missing file is an empty set.
func OpenHeld(dir string) (*Held, error) { return openHeld(filepath.Join(dir, heldName)) }

// OpenTransient loads dir/transient.json: the LVs the agent activated for
// the length of one request (a wipe, a clone's source and copy, a
// snapshot's origin). They are not held: lockstart never re-activates them,
// and the agent deactivates whatever a crash left there when it starts.
func OpenTransient(dir string) (*Held, error) { return openHeld(filepath.Join(dir, transientName)) }

func openHeld(path string) (*Held, error) {
	h := &Held{path: path, lvs: map[string]HeldLV{}}
	if err := h.refresh(); err != nil {
		return nil, err
	}
	return h, nil
}

// refresh re-reads the file if another process replaced it. h.mu is held.
func (h *Held) refresh() error {
	id, err := statID(h.path)
	if err != nil {
		return err
	}
	if id == h.seen {
		return nil
	}
	lvs, err := readHeld(h.path)
	if err != nil {
		return err
	}
	h.lvs, h.seen = lvs, id
	return nil
}

func readHeld(path string) (map[string]HeldLV, error) {
	lvs := map[string]HeldLV{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return lvs, nil
	}
	if err != nil {
		return nil, err
	}
	var f heldFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%s: unsupported version %d", path, f.Version)
	}
	for _, lv := range f.LVs {
		if lv.Mode != Exclusive && lv.Mode != Shared {
			return nil, fmt.Errorf("%s: %s/%s has invalid mode %q", path, lv.VG, lv.LV, lv.Mode)
		}
		lvs[lv.VG+"/"+lv.LV] = lv
	}
	return lvs, nil
}

// current returns the set as on disk; if the file became unreadable it
// keeps the last good copy (a reader must not lose track of held LVs), and
// the next update reports the error.
func (h *Held) current() map[string]HeldLV {
	_ = h.refresh()
	return h.lvs
}

// List returns the held LVs sorted by VG/LV.
func (h *Held) List() []HeldLV {
	h.mu.Lock()
	defer h.mu.Unlock()
	lvs := h.current()
	out := make([]HeldLV, 0, len(lvs))
	for _, lv := range lvs {
		out = append(out, lv)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VG != out[j].VG {
			return out[i].VG < out[j].VG
		}
		return out[i].LV < out[j].LV
	})
	return out
}

// Get returns the record for vg/lv.
func (h *Held) Get(vg, lv string) (HeldLV, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.current()[vg+"/"+lv]
	return r, ok
}

// Set records lvs and persists the set before returning: one write for
// all of them (a batch of activations records its LVs together). A record
// without Since keeps the one of the same LV in the same mode (a retried
// activation, a re-lock after a fence), else it is now.
func (h *Held) Set(lvs ...HeldLV) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return h.update(func(m map[string]HeldLV) {
		for _, lv := range lvs {
			key := lv.VG + "/" + lv.LV
			if old, ok := m[key]; ok && lv.Since.IsZero() && old.Mode == lv.Mode {
				lv.Since = old.Since
			}
			if lv.Since.IsZero() {
				lv.Since = now
			}
			m[key] = lv
		}
	})
}

// Delete forgets the LVs of vg and persists the set before returning.
func (h *Held) Delete(vg string, lvs ...string) error {
	return h.update(func(m map[string]HeldLV) {
		for _, lv := range lvs {
			delete(m, vg+"/"+lv)
		}
	})
}

func (h *Held) update(change func(map[string]HeldLV)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(h.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // closing releases the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	// Another process may have written since our last look: change what is
	// on disk, never our copy. An unreadable file is not overwritten.
	if err := h.refresh(); err != nil {
		return err
	}
	next := make(map[string]HeldLV, len(h.lvs)+1)
	for k, v := range h.lvs {
		next[k] = v
	}
	change(next)
	f := heldFile{Version: 1, LVs: make([]HeldLV, 0, len(next))}
	for _, v := range next {
		f.LVs = append(f.LVs, v)
	}
	sort.Slice(f.LVs, func(i, j int) bool { return f.LVs[i].VG+"/"+f.LVs[i].LV < f.LVs[j].VG+"/"+f.LVs[j].LV })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(h.path, append(b, '\n'), 0o600); err != nil {
		return err
	}
	// Memory follows disk only once the write is durable.
	id, err := statID(h.path)
	if err != nil {
		return err
	}
	h.lvs, h.seen = next, id
	return nil
}
