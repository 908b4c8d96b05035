package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/aos-agent/aos-agent/internal/demo"
)

func init() {
	register("demo", "run agents for three simulated hosts and tell the operator story", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		url := fs.String("transport-url", os.Getenv("AOS_TRANSPORT_URL"), "broker URL (rabbit://...)")
		metrics := fs.String("metrics-listen", "127.0.0.1:9720", "metrics endpoint of the first host ('' for none)")
		work := fs.String("work-dir", "", "directory for agent state and logs (default: a new temporary one)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if *url == "" {
			fmt.Fprintln(os.Stderr, "aos-lab demo: --transport-url or AOS_TRANSPORT_URL is required (make demo starts a local broker)")
			return 2
		}
		dir := *work
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "aos-demo-"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := demo.Run(ctx, demo.Options{TransportURL: *url, MetricsListen: *metrics, WorkDir: dir, Out: os.Stdout, Version: version}); err != nil {
			fmt.Fprintln(os.Stderr, "aos-lab demo:", err)
			return 1
		}
		return 0
	})
}
