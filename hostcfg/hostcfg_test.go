package hostcfg

import (
	"context"
	"errors"
	"flag"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := string(fixture.Read(t, name)); got != want {
		t.Errorf("%s differs:\n%s", name, UnifiedDiff("want", "got", []byte(want), []byte(got)))
	}
}

// host lays Debian's files out under a temp root.
func host(t *testing.T) string {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/lvm"), 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{"lvm.conf.debian": "etc/lvm/lvm.conf", "lvmlocal.conf.debian": "etc/lvm/lvmlocal.conf"} {
		if err := os.WriteFile(filepath.Join(root, dst), fixture.Read(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func edits() []Edit {
	return []Edit{
		LVMSettings("/etc/lvm/lvm.conf",
			Setting{"global", "use_lvmlockd", Int(1)},
			Setting{"global", "lvmlockctl_kill_command", Quote("/usr/local/sbin/aos-agent kill-hook")}),
		LVMSettings("/etc/lvm/lvmlocal.conf", Setting{"local", "host_id", Int(7)}),
		Replace("/etc/multipath/conf.d/aos-agent.conf", 0o644, []byte("multipaths {\n}\n")),
	}
}

func TestPlanDebianFilesGoldenAndIdempotent(t *testing.T) {
	root := host(t)
	changes, err := Plan(root, edits()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 {
		t.Fatalf("%d changes", len(changes))
	}
	golden(t, "lvm.conf.diff", changes[0].Diff())
	golden(t, "lvmlocal.conf.diff", changes[1].Diff())
	if !changes[2].Created {
		t.Error("new file diff:\\n: changes[2].Created = false, want true")
	}
	if !strings.HasPrefix(changes[2].Diff(), "--- /dev/null\n+++ b/etc/multipath/conf.d/aos-agent.conf\n@@ -0,0 +1,2 @@\n") {
		t.Error("new file diff:\\n: strings.HasPrefix(changes[2].Diff(), \"--- /dev/null\\n+++ b/etc/multipath/conf.d/aos-agent.conf\\n@@ -0,0 +1,2 @@\\n\") = false, want true")
	}
	if err := Write(changes); err != nil {
		t.Fatal(err)
	}
	again, err := Plan(root, edits()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		t.Errorf("second run changes %s:\n%s", c.Path, c.Diff())
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/lvm/lvm.conf"))
	{
		v, ok := GetLVM(conf, "global", "lvmlockctl_kill_command")
		if !ok {
			t.Error("kill command read back as: ok = false, want true")
		}
		if v != "/usr/local/sbin/aos-agent kill-hook" {
			t.Errorf("kill command read back as: v = %q, want \"/usr/local/sbin/aos-agent kill-hook\"", v)
		}
	}
	{
		v, ok := GetLVM(conf, "global", "use_lvmlockd")
		if !ok {
			t.Error("use_lvmlockd read back as: ok = false, want true")
		}
		if v != "1" {
			t.Errorf("use_lvmlockd read back as: v = %q, want \"1\"", v)
		}
	}
	if _, ok := GetLVM(conf, "global", "thin_check_executable"); ok {
		t.Error("a commented default read as set")
	}
}

// The diffs must be what diff(1) prints, so operators can apply or review
// them with the usual tools.
func TestDiffMatchesDiffUtils(t *testing.T) {
	root := host(t)
	changes, err := Plan(root, edits()[:2]...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		newFile := filepath.Join(t.TempDir(), "new")
		if err := os.WriteFile(newFile, c.New, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := (&run.Local{}).Run(context.Background(), run.Cmd{Argv: []string{"diff", "-u", "--label", "a" + c.Path, "--label", "b" + c.Path, c.file, newFile}})
		var rerr *run.Error
		if !errors.As(err, &rerr) {
			t.Fatal("diff: errors.As(err, &rerr) = false, want true")
		}
		if rerr.ExitCode != 1 {
			t.Fatalf("diff: rerr.ExitCode = %v, want 1", rerr.ExitCode)
		}
		if got := c.Diff(); got != string(res.Stdout) {
			t.Errorf("%s:\nours:\n%s\ndiff -u:\n%s", c.Path, got, res.Stdout)
		}
	}
}

func TestSetLVMCases(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		set            Setting
	}{
		{"active value replaced, comment kept", "global {\n\t# doc\n\tuse_lvmlockd = 0 # off\n\tx = \"}\"\n}\n", "global {\n\t# doc\n\tuse_lvmlockd = 1\n\tx = \"}\"\n}\n", Setting{"global", "use_lvmlockd", "1"}},
		{"added before closing brace", "global {\n\ta = 1\n}\nlocal {\n}\n", "global {\n\ta = 1\n}\nlocal {\n\thost_id = 3\n}\n", Setting{"local", "host_id", "3"}},
		{"section appended", "# only comments\nglobal {\n}", "# only comments\nglobal {\n}\nlocal {\n\thost_id = 3\n}\n", Setting{"local", "host_id", "3"}},
		{"nested section key not touched", "devices {\n\tsub {\n\t\tfilter = 1\n\t}\n\t# filter = 0\n}\n", "devices {\n\tsub {\n\t\tfilter = 1\n\t}\n\tfilter = 2\n}\n", Setting{"devices", "filter", "2"}},
	} {
		got, err := SetLVM([]byte(c.in), c.set)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n%s", c.name, UnifiedDiff("want", "got", []byte(c.want), got))
		}
	}
}

func TestSetLVMRefusesAmbiguousFiles(t *testing.T) {
	for name, in := range map[string]string{
		"key twice":     "global {\n\tuse_lvmlockd = 0\n\tuse_lvmlockd = 1\n}\n",
		"section twice": "global {\n}\nglobal {\n}\n",
		"unbalanced":    "global {\n",
		"extra brace":   "}\n",
	} {
		if _, err := SetLVM([]byte(in), Setting{"global", "use_lvmlockd", "1"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestLVMSettingsNeedsTheFile(t *testing.T) {
	{
		_, err := Plan(t.TempDir(), edits()[0])
		if err == nil {
			t.Fatal("got: err = nil, want non-nil")
		}
		if !strings.Contains(err.Error(), "is lvm2 installed") {
			t.Errorf("got: err.Error() = %q, want it to contain \"is lvm2 installed\"", err.Error())
		}
	}
}

func TestParseLVMVersion(t *testing.T) {
	v, err := ParseLVMVersion(fixture.Read(t, "lvm-version.2.03.16.txt"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if v != (LVMVersion{2, 3, 16}) {
		t.Fatalf("v = %v, want %v", v, (LVMVersion{2, 3, 16}))
	}
	if v.String() != "2.03.16" {
		t.Fatalf("v.String() = %q, want \"2.03.16\"", v.String())
	}
	for _, c := range []struct {
		v    LVMVersion
		want bool
	}{{v, true}, {LVMVersion{2, 3, 11}, false}, {LVMVersion{3, 0, 0}, true}} {
		if got := c.v.AtLeast(KillCommandSince); got != c.want {
			t.Errorf("%s.AtLeast(%s) = %v, want %v", c.v, KillCommandSince, got, c.want)
		}
	}
	if _, err := ParseLVMVersion([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestBinaryChangeIsSummarised(t *testing.T) {
	changes, err := Plan(t.TempDir(), Edit{Path: "/usr/local/sbin/x", Mode: 0o755, Binary: true, Apply: func([]byte) ([]byte, error) { return []byte{0, 1, 2}, nil }})
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(changes) != 1 {
		t.Fatalf("len(changes) = %v, want 1", len(changes))
	}
	if got := changes[0].Diff(); got != "Binary file /usr/local/sbin/x changed (0 -> 3 bytes)\n" {
		t.Errorf("got %q", got)
	}
}

// Editing and diffing Debian's 2400-line lvm.conf, as install does.
func BenchmarkSetLVMAndDiff(b *testing.B) {
	conf, err := os.ReadFile("testdata/lvm.conf.debian")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out, err := SetLVM(conf, Setting{"global", "use_lvmlockd", "1"}, Setting{"global", "lvmlockctl_kill_command", Quote("/usr/local/sbin/aos-agent kill-hook")})
		if err != nil {
			b.Fatal(err)
		}
		if UnifiedDiff("a", "b", conf, out) == "" {
			b.Fatal("no diff")
		}
	}
}
