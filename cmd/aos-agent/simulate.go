package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/aos-agent/aos-agent/internal/demo"
	"go.uber.org/zap"
)

func init() {
	register("simulate", "run agents for simulated hosts sharing one VG until stopped (for driver tests)", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
		url := fs.String("transport-url", os.Getenv("AOS_TRANSPORT_URL"), "broker URL (rabbit://...)")
		hostList := fs.String("hosts", "compute-a,compute-b,cinder-1", "comma-separated host names")
		topic := fs.String("topic", "aos-agent", "RPC topic")
		work := fs.String("work-dir", "", "directory for agent state (default: a new temporary one)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if *url == "" {
			fmt.Fprintln(os.Stderr, "aos-agent simulate: --transport-url or AOS_TRANSPORT_URL is required")
			return 2
		}
		dir := *work
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "aos-sim-"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		log, err := zap.NewProduction()
		if err != nil {
			return 1
		}
		c, err := demo.StartCluster(ctx, demo.Options{TransportURL: *url, WorkDir: dir, Topic: *topic, Version: version},
			strings.Split(*hostList, ","), os.Stderr, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent simulate:", err)
			return 1
		}
		fmt.Println("READY", dir) // the test driver waits for this line
		<-ctx.Done()
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent simulate:", err)
			return 1
		}
		return 0
	})
}
