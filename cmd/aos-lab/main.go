// Command aos-lab runs the project's test rigs: simulated hosts sharing one
// VG (simulate, demo) and the lab guests' control daemon (lab-guest). It
// links the simulator, so hosts run aos-agent and never this.
package main

import "github.com/aos-agent/aos-agent/internal/cli"

var commands = cli.New("aos-lab")

func register(name, summary string, run cli.RunFunc) { commands.Register(name, summary, run) }

// version labels the simulated agents' aos_build_info; set like aos-agent's.
var version = "dev"

func main() { commands.Main() }
