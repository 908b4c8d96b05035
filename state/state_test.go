package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHeldPersistsAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	h, err := OpenHeld(dir)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(h.List()) != 0 {
		t.Fatalf("len(h.List()) = %v, want 0", len(h.List()))
	}
	must(t, h.Set(HeldLV{VG: "vol", LV: "b", UUID: "u2", Mode: Shared}))
	must(t, h.Set(HeldLV{VG: "vol", LV: "a", UUID: "u1", Mode: Exclusive}))
	must(t, h.Set(HeldLV{VG: "vol", LV: "c", Mode: Exclusive}))
	must(t, h.Delete("vol", "c"))
	h2, err := OpenHeld(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := h2.List()
	if len(got) != 2 {
		t.Fatalf("reloaded: len(got) = %v, want 2", len(got))
	}
	if got[0].LV != "a" {
		t.Fatalf("reloaded: got[0].LV = %q, want \"a\"", got[0].LV)
	}
	if got[1].Mode != Shared {
		t.Fatalf("reloaded: got[1].Mode = %v, want %v", got[1].Mode, Shared)
	}
	{
		r, ok := h2.Get("vol", "a")
		if !ok {
			t.Fatal("ok = false, want true")
		}
		if r.UUID != "u1" {
			t.Fatalf("r.UUID = %q, want \"u1\"", r.UUID)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != heldName && e.Name() != heldName+".lock" {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

// The daemon and `aos-agent recover` each open the file: what one process
// drops (a LOST LV) must not come back with the other's next write.
func TestHeldSharedBetweenProcesses(t *testing.T) {
	dir := t.TempDir()
	daemon, _ := OpenHeld(dir)
	must(t, daemon.Set(HeldLV{VG: "vol", LV: "lost", Mode: Exclusive}))
	must(t, daemon.Set(HeldLV{VG: "vol", LV: "kept", Mode: Shared}))
	recoverer, err := OpenHeld(dir)
	if err != nil {
		t.Fatal(err)
	}
	must(t, recoverer.Delete("vol", "lost"))
	if _, ok := daemon.Get("vol", "lost"); ok {
		t.Fatal("the daemon still sees an LV another process dropped")
	}
	must(t, daemon.Set(HeldLV{VG: "vol", LV: "new", Mode: Exclusive}))
	reread, _ := OpenHeld(dir)
	var names []string
	for _, lv := range reread.List() {
		names = append(names, lv.LV)
	}
	if strings.Join(names, ",") != "kept,new" {
		t.Fatalf("on disk: %v", names)
	}

	// A file another process corrupted: readers keep the last good set,
	// writers refuse rather than overwrite what they cannot read.
	must(t, os.WriteFile(filepath.Join(dir, heldName), []byte("{torn"), 0o600))
	if got := daemon.List(); len(got) != 2 {
		t.Fatalf("last good set lost: %+v", got)
	}
	if err := daemon.Set(HeldLV{VG: "vol", LV: "x", Mode: Exclusive}); err == nil {
		t.Fatal("wrote over an unreadable held.json")
	}
}

func TestHeldRejectsCorruptFiles(t *testing.T) {
	for name, body := range map[string]string{
		"json":    "{not json",
		"version": `{"version":2,"lvs":[]}`,
		"mode":    `{"version":1,"lvs":[{"vg":"v","lv":"l","mode":"rw"}]}`,
	} {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, heldName), []byte(body), 0o600))
		if _, err := OpenHeld(dir); err == nil {
			t.Errorf("%s: corrupt file accepted", name)
		}
	}
}

func TestWriteFailureKeepsMemoryAndDisk(t *testing.T) {
	dir := t.TempDir()
	h, _ := OpenHeld(dir)
	must(t, h.Set(HeldLV{VG: "vol", LV: "a", Mode: Exclusive}))
	h.path = filepath.Join(dir, "held.json", "sub", "held.json") // parent is a file: write fails
	if err := h.Set(HeldLV{VG: "vol", LV: "b", Mode: Exclusive}); err == nil {
		t.Fatal("write into a file path succeeded")
	}
	if _, ok := h.Get("vol", "b"); ok {
		t.Fatal("memory changed although the write failed")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Since is when the lock was taken in its mode: a retried activation or a
// re-lock keeps it, a change of mode renews it.
func TestHeldSince(t *testing.T) {
	h, err := OpenHeld(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	taken := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	if err := h.Set(HeldLV{VG: "vol", LV: "a", Mode: Exclusive, Since: taken}, HeldLV{VG: "vol", LV: "b", Mode: Shared}); err != nil {
		t.Fatal(err)
	}
	if b, _ := h.Get("vol", "b"); b.Since.IsZero() {
		t.Error("b recorded without Since")
	}
	if err := h.Set(HeldLV{VG: "vol", LV: "a", Mode: Exclusive}); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.Get("vol", "a"); !a.Since.Equal(taken) {
		t.Errorf("a retried: Since = %v, want %v", a.Since, taken)
	}
	if err := h.Set(HeldLV{VG: "vol", LV: "a", Mode: Shared}); err != nil {
		t.Fatal(err)
	}
	if a, _ := h.Get("vol", "a"); !a.Since.After(taken) {
		t.Errorf("a converted to shared: Since = %v, want later than %v", a.Since, taken)
	}
}
