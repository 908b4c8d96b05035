package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/state"
)

var showAgent = []string{"systemctl", "show", "--property=ActiveState,StatusText", "aos-agent.service"}

// The upgrade restarts the agent only while it serves with nothing to
// interrupt; every other state says why not.
func TestRestartCheck(t *testing.T) {
	serving := "ActiveState=active\nStatusText=serving vol\n"
	cases := []struct {
		name   string
		show   string
		setup  func(t *testing.T, cfg, stateDir string)
		code   int
		reason string
	}{
		{"serving", serving, nil, 0, "safe"},
		{"stopped", "ActiveState=inactive\nStatusText=\n", nil, 1, "aos-agent.service is inactive"},
		{"not ready", "ActiveState=activating\nStatusText=waiting: lockspace vol not joined\n", nil, 1, "is activating"},
		{"degraded", "ActiveState=active\nStatusText=degraded: message broker disconnected\n", nil, 1, `reports "degraded: message broker disconnected"`},
		{"fenced", serving, func(t *testing.T, _, stateDir string) {
			writeFile(t, recovery.JournalPath(stateDir, "vol"), `{"version":1,"vg":"vol","phase":"fenced"}`)
		}, 1, "VG vol is fenced, recovery journal phase fenced"},
		{"copy in flight", serving, func(t *testing.T, _, stateDir string) {
			tr, err := state.OpenTransient(stateDir)
			if err == nil {
				err = tr.Set(state.HeldLV{VG: "vol", LV: "volume-src", Mode: state.Shared})
			}
			if err != nil {
				t.Fatal(err)
			}
		}, 1, "in flight on vol/volume-src"},
		{"config the new version refuses", serving, func(t *testing.T, cfg, _ string) {
			b, _ := os.ReadFile(cfg)
			writeFile(t, cfg, string(b)+"[lvm]\nremoved_key = 1\n")
		}, 1, "does not accept the configuration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, stateDir := writeKillHookConfig(t, "")
			if c.setup != nil {
				c.setup(t, cfg, stateDir)
			}
			r := run.NewScripted(t, run.Step{Argv: showAgent, Stdout: c.show})
			var out strings.Builder
			{
				code := restartCheck(context.Background(), []string{"--config", cfg}, r, &out)
				if code != c.code {
					t.Fatalf("exit: code = %v, want %v", code, c.code)
				}
				if !strings.Contains(out.String(), c.reason) {
					t.Fatalf("exit: out.String() = %q, want it to contain c.reason", out.String())
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
