// Package unitfiles embeds the agent's systemd units and drop-ins so that
// `aos-agent install` ships exactly what the 40-systemd stage verified.
package unitfiles

import (
	"embed"
	"io/fs"
)

//go:embed *.service */*.conf
var files embed.FS

// Dir is where they are installed.
const Dir = "/etc/systemd/system"

// Units lists the embedded files' paths relative to Dir.
func Units() []string {
	var out []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	return out
}

// Read returns one embedded file.
func Read(name string) ([]byte, error) { return files.ReadFile(name) }

// Enable lists the units `systemctl enable` must link into their targets.
var Enable = []string{"aos-agent-lockstart.service", "aos-agent.service"}
