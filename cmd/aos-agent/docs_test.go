package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/internal/cli"
	"github.com/aos-agent/aos-agent/internal/run"
)

func TestParseHelp(t *testing.T) {
	call := "usage: aos-agent call [flags] HOST METHOD [key=value ...]\n" +
		"HOST \"\" calls any agent of the topic.\n\n" +
		"  -timeout duration\n    \treply timeout (default 1m0s)\n" +
		"  -v\tverbose\n" +
		"  -work-dir string\n    \tdirectory for state\n    \t(default: a new temporary one)\n"
	got := parseHelp("call", call)
	want := cmdDoc{Name: "call", Args: "HOST METHOD [key=value ...]", Notes: []string{`HOST "" calls any agent of the topic.`},
		Flags: []flagDoc{{"timeout", "duration", "reply timeout (default 1m0s)"}, {"v", "", "verbose"},
			{"work-dir", "string", "directory for state\n(default: a new temporary one)"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("call:\n got  %+v\n want %+v", got, want)
	}
	recover := "usage: aos-agent recover [--config PATH] [--wait DURATION] VG\n  -dry-run\n    \tchange nothing\n"
	{
		got := parseHelp("recover", recover)
		if got.Args != "VG" {
			t.Fatalf("recover: got.Args = %q, want \"VG\"", got.Args)
		}
		if len(got.Flags) != 1 {
			t.Fatalf("recover: len(got.Flags) = %v, want 1", len(got.Flags))
		}
		if got.Flags[0] != (flagDoc{"dry-run", "", "change nothing"}) {
			t.Fatalf("recover: got.Flags[0] = %v, want %v", got.Flags[0], (flagDoc{"dry-run", "", "change nothing"}))
		}
	}
	{
		got := parseHelp("run", "Usage of run:\n  -config string\n    \tconfiguration file\n")
		if got.Args != "" {
			t.Fatalf("run: got.Args = %q, want \"\"", got.Args)
		}
		if got.Notes != nil {
			t.Fatalf("run: got.Notes = %v, want nil", got.Notes)
		}
		if len(got.Flags) != 1 {
			t.Fatalf("run: len(got.Flags) = %v, want 1", len(got.Flags))
		}
	}
}

// Every registered command gets a page with the four sections and its
// flags, and the completion knows it; a command that runs instead of
// answering -h stops the generator.
func TestDocsForEveryCommand(t *testing.T) {
	r := run.NewScripted(t).AnyOrder()
	for _, name := range commands.Names() {
		r.Expect(run.Step{Argv: []string{"/x/aos-agent", name, "-h"}, ExitCode: 2,
			Stderr: "Usage of " + name + ":\n  -config string\n    \tconfiguration file (default \"/etc/aos-agent/aos-agent.conf\")\n"})
	}
	docs, err := describeCommands(context.Background(), r, "/x/aos-agent")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeManPages(dir, docs, "2026-12-05"); err != nil {
		t.Fatal(err)
	}
	completion := bashCompletion(docs)
	for _, name := range commands.Names() {
		b, err := os.ReadFile(filepath.Join(dir, "aos-agent-"+name+".8"))
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		for _, want := range []string{".TH AOS\\-AGENT\\-" + strings.ToUpper(roff(name)) + " 8 \"2026-12-05\"", ".SH NAME\naos\\-agent\\-" + roff(name) + " \\- ",
			".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS", ".BI \\-\\-config \" string\"", "(default \"/etc/aos\\-agent/aos\\-agent.conf\")"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s page lacks %q:\n%s", name, want, page)
			}
		}
		if !strings.Contains(completion, "        "+name+") opts=\"--help --config\" ;;") {
			t.Errorf("completion lacks %s's flags", name)
		}
	}
	main, err := os.ReadFile(filepath.Join(dir, "aos-agent.8"))
	if err != nil {
		t.Fatalf("main page: err = %v, want nil", err)
	}
	if !strings.Contains(string(main), ".BR aos\\-agent\\-install (8)") {
		t.Fatalf("main page: string(main) = %q, want it to contain \".BR aos\\\\-agent\\\\-install (8)\"", string(main))
	}
	for name := range descriptions {
		if !commands.Has(name) {
			t.Errorf("description of %q, which is no command", name)
		}
	}

	ran := run.NewScripted(t, run.Step{Argv: []string{"/x/aos-agent", "call", "-h"}, Stdout: "aos-agent dev\n"})
	saved := commands
	commands = cli.New("aos-agent")
	commands.Register("call", saved.Summary("call"), runCall)
	defer func() { commands = saved }()
	{
		_, err := describeCommands(context.Background(), ran, "/x/aos-agent")
		if err == nil {
			t.Fatal("a command that ran on -h: err = nil, want non-nil")
		}
		if !strings.Contains(err.Error(), "want its usage and exit 2") {
			t.Fatalf("a command that ran on -h: err.Error() = %q, want it to contain \"want its usage and exit 2\"", err.Error())
		}
	}
}
