package scenario

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefinitionsLoad(t *testing.T) {
	ss, err := Load("definitions")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 6 {
		t.Fatalf("only %d scenarios", len(ss))
	}
}

func TestLoadRejectsBadDefinitions(t *testing.T) {
	for name, body := range map[string]string{
		"unknown-field": `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"create","lv":"a","sizee":1}]}`,
		"unknown-op":    `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"format"}]}`,
		"bad-host":      `{"name":"x","hosts":1,"steps":[{"host":"h2","op":"create"}]}`,
		"bad-class":     `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"create","expect":"Oops"}]}`,
		"empty":         `{"name":"x","hosts":1,"steps":[]}`,
		"bad-setup":     `{"name":"x","hosts":1,"setup":"watchdog","steps":[{"host":"h1","op":"create"}]}`,
		"await-what":    `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"await","what":"delete","within":"lease-expiry"}]}`,
		"await-within":  `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"await","what":"lockspace","want":"lost","within":"90s"}]}`,
		"await-want":    `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"await","what":"table","within":"lease-expiry"}]}`,
		"stall-length":  `{"name":"x","hosts":1,"steps":[{"host":"h1","op":"stall-io"}]}`,
		"not-json":      `{`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Every scenario passes on the simulator through the real agent code.
func TestScenariosOnSimulator(t *testing.T) {
	ss, err := Load("definitions")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		t.Run(s.Name, func(t *testing.T) {
			c := NewSimCluster(s.Hosts, nil, 0)
			r := &Runner{Cluster: c, StateDir: t.TempDir()}
			results, err := r.Run(context.Background(), s)
			if err != nil {
				t.Fatalf("%v\nresults:\n%s", err, strings.Join(Outcomes(results), "\n"))
			}
			for _, r := range results {
				if r.SinceFault > 0 {
					t.Logf("%d %s %s %s => %s %s (%v after the fault, sim time)", r.Index, r.Host, r.Op, r.LV, r.Outcome, r.Value, r.SinceFault.Round(time.Second))
				}
			}
		})
	}
}
