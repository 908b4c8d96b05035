// Package cli is the subcommand table both binaries share: aos-agent (what
// a host runs) and aos-lab (the simulator, the demo and the lab's guest
// daemon, which no host needs).
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// RunFunc runs one subcommand with the arguments after its name and
// returns the process's exit code.
type RunFunc func(ctx context.Context, args []string) int

type command struct {
	summary string
	run     RunFunc
}

// Commands is one binary's subcommands. Each subcommand's file registers
// itself from init, so adding one touches only its own file.
type Commands struct {
	binary string
	byName map[string]command
}

// New returns an empty table for the binary named binary.
func New(binary string) *Commands {
	return &Commands{binary: binary, byName: map[string]command{}}
}

// Register adds a subcommand; a name registered twice is a programming error.
func (c *Commands) Register(name, summary string, run RunFunc) {
	if _, dup := c.byName[name]; dup {
		panic("duplicate subcommand " + name)
	}
	c.byName[name] = command{summary: summary, run: run}
}

// Names lists the subcommands, sorted.
func (c *Commands) Names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Summary is name's one-line description ("" for an unknown name).
func (c *Commands) Summary(name string) string { return c.byName[name].summary }

// Has reports whether name is a subcommand.
func (c *Commands) Has(name string) bool {
	_, ok := c.byName[name]
	return ok
}

func (c *Commands) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", c.binary)
	names := c.Names()
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s %s\n", width, n, c.byName[n].summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", c.binary)
}

// Main runs the subcommand os.Args names, cancelling its context on
// SIGINT or SIGTERM, and exits with its code.
func (c *Commands) Main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		c.usage(os.Stderr)
		os.Exit(2)
	}
	cmd, ok := c.byName[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown command %q\n\n", c.binary, os.Args[1])
		c.usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cmd.run(ctx, os.Args[2:])
	stop()
	os.Exit(code)
}
