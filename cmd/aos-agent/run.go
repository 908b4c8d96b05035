package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/aos-agent/aos-agent/agent"
	"github.com/aos-agent/aos-agent/agent/config"
)

func init() {
	register("run", "run the agent daemon (systemd Type=notify)", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		path := fs.String("config", config.DefaultPath, "configuration file")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent:", err)
			return 1
		}
		d, err := agent.New(cfg, agent.Options{Version: version})
		if err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent:", err)
			return 1
		}
		if err := d.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent:", err)
			return 1
		}
		return 0
	})
}
