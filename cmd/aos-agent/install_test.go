package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
)

// On a host where the package put the units, install edits only the host's
// settings and points the kill hook at the package's binary; without the
// package it installs itself, units included, under /usr/local/sbin.
func TestInstallEditsPackagedOrNot(t *testing.T) {
	lvmVersion, err := os.ReadFile("../../hostcfg/testdata/lvm-version.2.03.16.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, packaged := range []bool{true, false} {
		r := run.NewScripted(t, run.Step{Argv: []string{"lvm", "version"}, Stdout: string(lvmVersion)})
		edits, err := installEdits(context.Background(), r, &config.Config{}, 3, "", packaged)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, e := range edits {
			paths = append(paths, e.Path)
		}
		owned := slices.Contains(paths, localAgentPath) || slices.Contains(paths, "/etc/systemd/system/aos-agent.service")
		if owned == packaged {
			t.Errorf("packaged=%v: edits %v", packaged, paths)
		}
		root := t.TempDir()
		lvmConf := filepath.Join(root, "etc/lvm/lvm.conf")
		writeFile(t, lvmConf, "global {\n}\n")
		i := slices.Index(paths, "/etc/lvm/lvm.conf")
		changes, err := hostcfg.Plan(root, edits[i])
		if err != nil {
			t.Fatal(err)
		}
		want := `lvmlockctl_kill_command = "` + map[bool]string{true: packagedAgentPath, false: localAgentPath}[packaged] + ` kill-hook"`
		if len(changes) != 1 {
			t.Fatalf("packaged=%v: len(changes) = %v, want 1", packaged, len(changes))
		}
		if !strings.Contains(changes[0].Diff(), want) {
			t.Errorf("packaged=%v: changes[0].Diff() = %q, want it to contain %q", packaged, changes[0].Diff(), want)
		}
	}
}

func TestPackagedHostDetectionAndShadows(t *testing.T) {
	root := t.TempDir()
	if isPackaged(root) {
		t.Fatal("an empty root is packaged")
	}
	writeFile(t, filepath.Join(root, "lib/systemd/system/aos-agent.service"), "[Service]\n")
	if !isPackaged(root) {
		t.Fatal("the package's unit is not seen")
	}
	if left := shadowingFiles(root); left != nil {
		t.Fatalf("shadows in a clean root: %v", left)
	}
	writeFile(t, filepath.Join(root, "usr/local/sbin/aos-agent"), "old")
	writeFile(t, filepath.Join(root, "etc/systemd/system/nova-compute.service.d/aos-agent.conf"), "[Unit]\n")
	want := []string{"/usr/local/sbin/aos-agent", "/etc/systemd/system/nova-compute.service.d/aos-agent.conf"}
	if left := shadowingFiles(root); !slices.Equal(left, want) {
		t.Fatalf("shadows %v, want %v", left, want)
	}
}
