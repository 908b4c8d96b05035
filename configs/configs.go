// Package configs embeds what the agent ships besides its binary: the
// systemd units and drop-ins, so `aos-agent install` writes exactly what
// the 40-systemd stage verified.
package configs

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed systemd/*.service systemd/*/*.conf
var files embed.FS

// UnitDir is where the units and drop-ins are installed.
const UnitDir = "/etc/systemd/system"

// Units lists the units and drop-ins, as paths relative to UnitDir.
func Units() []string {
	var out []string
	_ = fs.WalkDir(files, "systemd", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, "systemd/"))
		}
		return err
	})
	return out
}

// ReadUnit returns one unit or drop-in by its path relative to UnitDir.
func ReadUnit(name string) ([]byte, error) { return files.ReadFile("systemd/" + name) }

// EnableUnits are the units `systemctl enable` links into their targets.
var EnableUnits = []string{"aos-agent-lockstart.service", "aos-agent.service"}
