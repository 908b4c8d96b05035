package virt

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/fixture"
	"github.com/aos-agent/aos-agent/internal/run"
)

func TestParseStateRecorded(t *testing.T) {
	for file, want := range map[string]State{
		"domstate-ioerror.lab.txt":  {"paused", "I/O error"},
		"domstate-booted.lab.txt":   {"running", "booted"},
		"domstate-user.lab.txt":     {"paused", "user"},
		"domstate-unpaused.lab.txt": {"running", "unpaused"},
	} {
		got, err := ParseState(fixture.Read(t, file))
		if err != nil {
			t.Fatalf("%s: err = %v, want nil", file, err)
		}
		if got != want {
			t.Errorf("%s: got = %v, want %v", file, got, want)
		}
		if got.PausedOnIOError() != (file == "domstate-ioerror.lab.txt") {
			t.Errorf("%s: PausedOnIOError %v", file, got.PausedOnIOError())
		}
	}
	{
		s, err := ParseState([]byte("shut off\n\n"))
		if err != nil {
			t.Fatalf("without reason: err = %v, want nil", err)
		}
		if s.State != "shut off" {
			t.Errorf("without reason: s.State = %q, want \"shut off\"", s.State)
		}
		if s.Reason != "" {
			t.Errorf("without reason: s.Reason = %q, want \"\"", s.Reason)
		}
	}
	for _, bad := range []string{"", "\n\n", "paused (I/O error"} {
		if _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseBlkListRecorded(t *testing.T) {
	disks, err := ParseBlkList(fixture.Read(t, "domblklist.lab.txt"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(disks) != 1 {
		t.Fatalf("len(disks) = %v, want 1", len(disks))
	}
	if disks[0] != (Disk{"vda", "/dev/vol/vm-disk"}) {
		t.Fatalf("disks[0] = %v, want %v", disks[0], (Disk{"vda", "/dev/vol/vm-disk"}))
	}
	two := " Target   Source\n------------------------\n vda      /dev/mapper/vol-lv--1\n hdc      -\n\n"
	disks, err = ParseBlkList([]byte(two))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(disks) != 2 {
		t.Fatalf("len(disks) = %v, want 2", len(disks))
	}
	if disks[1].Source != "-" {
		t.Fatalf("disks[1].Source = %q, want \"-\"", disks[1].Source)
	}
	for _, bad := range []string{"", " Target Source\n vda /x\n", "---\n vda\n"} {
		if _, err := ParseBlkList([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestLVOf(t *testing.T) {
	for _, c := range []struct {
		src, lv string
		ok      bool
	}{
		{"/dev/vol/vm-disk", "vm-disk", true},
		{"/dev/mapper/vol-vm--disk", "vm-disk", true},
		{"/dev/mapper/vol-lv1-real", "", false}, // a layer, not the LV
		{"/dev/other/lv1", "", false},
		{"/dev/mapper/other-lv1", "", false},
		{"/dev/vol/", "", false},
		{"/dev/vol/a/b", "", false},
		{"/var/lib/nova/instances/x/disk", "", false},
		{"-", "", false},
	} {
		lv, ok := LVOf(c.src, "vol")
		if lv != c.lv || ok != c.ok {
			t.Errorf("LVOf(%q) = %q %v", c.src, lv, ok)
		}
	}
}

func TestClientArgvAndErrors(t *testing.T) {
	ctx := context.Background()
	v := []string{"virsh", "-c", "qemu:///system"}
	r := run.NewScripted(t,
		run.Step{Argv: append(v, "list", "--all", "--name"), Stdout: string(fixture.Read(t, "list-name.lab.txt"))},
		run.Step{Argv: append(v, "domstate", "--reason", "vm1"), Stdout: string(fixture.Read(t, "domstate-ioerror.lab.txt"))},
		run.Step{Argv: append(v, "domblklist", "vm1"), Stdout: string(fixture.Read(t, "domblklist.lab.txt"))},
		run.Step{Argv: append(v, "resume", "vm1"), Stdout: "Domain 'vm1' resumed\n\n"},
		run.Step{Argv: append(v, "suspend", "vm1"), Stdout: "Domain 'vm1' suspended\n\n"},
		run.Step{Argv: append(v, "destroy", "vm1"), Stdout: "Domain 'vm1' destroyed\n\n"},
		run.Step{Argv: append(v, "destroy", "vm1"), ExitCode: 1,
			Stderr: "error: Failed to destroy domain 'vm1'\nerror: Requested operation is not valid: domain is not running\n"},
		run.Step{Argv: append(v, "domstate", "--reason", "nosuch"), ExitCode: 1, Stderr: "error: failed to get domain 'nosuch'\n"},
		run.Step{Argv: append(v, "list", "--all", "--name"), ExitCode: 1,
			Stderr: "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused\n"},
		run.Step{Argv: append(v, "list", "--all", "--name"), Err: &run.Error{Argv: []string{"virsh"}, ExitCode: -1, Err: exec.ErrNotFound}},
	)
	c := New(r, "", time.Minute)
	{
		names, err := c.Domains(ctx)
		if err != nil {
			t.Fatalf("Domains: err = %v, want nil", err)
		}
		if len(names) != 1 {
			t.Fatalf("Domains: len(names) = %v, want 1", len(names))
		}
		if names[0] != "vm1" {
			t.Fatalf("Domains: names[0] = %q, want \"vm1\"", names[0])
		}
	}
	{
		st, err := c.State(ctx, "vm1")
		if err != nil {
			t.Fatalf("State: err = %v, want nil", err)
		}
		if !st.PausedOnIOError() {
			t.Fatal("State: st.PausedOnIOError() = false, want true")
		}
		if st.String() != "paused (I/O error)" {
			t.Fatalf("State: st.String() = %q, want \"paused (I/O error)\"", st.String())
		}
	}
	{
		d, err := c.Disks(ctx, "vm1")
		if err != nil {
			t.Fatalf("Disks: err = %v, want nil", err)
		}
		if len(d) != 1 {
			t.Fatalf("Disks: len(d) = %v, want 1", len(d))
		}
	}
	if err := c.Resume(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Suspend(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second finds it shut off already: done
		if err := c.Destroy(ctx, "vm1"); err != nil {
			t.Fatalf("destroy %d: %v", i, err)
		}
	}
	if _, err := c.State(ctx, "nosuch"); !errors.Is(err, ErrNoDomain) {
		t.Fatalf("missing domain: %v", err)
	}
	if _, err := c.Domains(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("libvirtd down: %v", err)
	}
	{
		_, err := c.Domains(ctx)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("no virsh: err = %v, want ErrUnavailable", err)
		}
		if !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("no virsh: err = %v, want exec.ErrNotFound", err)
		}
	}
}

func TestParseDiskPolicies(t *testing.T) {
	b, err := os.ReadFile("testdata/dumpxml.libvirt9.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseDiskPolicies(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []DiskPolicy{
		{Target: "vda", Source: "/dev/vol/vm-disk", ErrorPolicy: "stop", ReadErrorPolicy: "stop"},
		{Target: "vdb", Source: "/dev/vol/data-disk", ErrorPolicy: "report", ReadErrorPolicy: "report"},
		{Target: "hdc"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseDiskPolicies\n got %+v\nwant %+v", got, want)
	}
	if _, err := ParseDiskPolicies([]byte("error: failed to get domain")); err == nil {
		t.Error("ParseDiskPolicies of a non-XML answer: err = nil, want an error")
	}
}
