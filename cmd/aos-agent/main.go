// Command aos-agent is the node agent for OpenStack hosts sharing one
// lvmlockd/sanlock volume group. One binary, one subcommand per job; the
// test rigs (simulator, demo, lab guest daemon) are cmd/aos-lab.
package main

import "github.com/aos-agent/aos-agent/internal/cli"

var commands = cli.New("aos-agent")

func register(name, summary string, run cli.RunFunc) { commands.Register(name, summary, run) }

func main() { commands.Main() }
