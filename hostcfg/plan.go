package hostcfg

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aos-agent/aos-agent/internal/atomicfile"
)

// Edit computes a file's wanted content from its current one (nil when the
// file does not exist).
type Edit struct {
	Path   string // absolute, as on the host; Plan prefixes the root
	Mode   fs.FileMode
	Binary bool // diff summarised in one line
	Apply  func(current []byte) ([]byte, error)
}

// Replace is an Edit that makes the file exactly content.
func Replace(path string, mode fs.FileMode, content []byte) Edit {
	return Edit{Path: path, Mode: mode, Apply: func([]byte) ([]byte, error) { return content, nil }}
}

// LVMSettings is an Edit setting keys in an lvm.conf-syntax file, which
// must exist: lvm2 ships it, and writing a fresh one would drop its defaults.
func LVMSettings(path string, settings ...Setting) Edit {
	return Edit{Path: path, Mode: 0o644, Apply: func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, fmt.Errorf("%s does not exist: is lvm2 installed?", path)
		}
		return SetLVM(cur, settings...)
	}}
}

// Change is one file that differs from what is wanted.
type Change struct {
	Path     string // as on the host
	file     string // under the root
	Mode     fs.FileMode
	Old, New []byte
	Created  bool
	Binary   bool
}

// Diff is the change as a unified diff.
func (c Change) Diff() string {
	if c.Binary {
		return fmt.Sprintf("Binary file %s changed (%d -> %d bytes)\n", c.Path, len(c.Old), len(c.New))
	}
	a := "a" + c.Path
	if c.Created {
		a = "/dev/null"
	}
	return UnifiedDiff(a, "b"+c.Path, c.Old, c.New)
}

// Plan reads each file under root and returns the files whose content would
// change; none when the host is already configured.
func Plan(root string, edits ...Edit) ([]Change, error) {
	var out []Change
	for _, e := range edits {
		file := filepath.Join(root, e.Path)
		cur, err := os.ReadFile(file)
		created := errors.Is(err, fs.ErrNotExist)
		if err != nil && !created {
			return nil, err
		}
		want, err := e.Apply(cur)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Path, err)
		}
		if !created && bytes.Equal(cur, want) {
			continue
		}
		out = append(out, Change{Path: e.Path, file: file, Mode: e.Mode, Old: cur, New: want, Created: created, Binary: e.Binary})
	}
	return out, nil
}

// Write applies the changes, each file atomically; an existing file keeps
// its permissions.
func Write(changes []Change) error {
	for _, c := range changes {
		mode := c.Mode
		if fi, err := os.Stat(c.file); err == nil {
			mode = fi.Mode().Perm()
		}
		if err := os.MkdirAll(filepath.Dir(c.file), 0o755); err != nil {
			return err
		}
		if err := atomicfile.Write(c.file, c.New, mode); err != nil {
			return fmt.Errorf("%s: %w", c.Path, err)
		}
	}
	return nil
}
