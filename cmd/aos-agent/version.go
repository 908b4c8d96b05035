package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=..." (the
// package build passes packaging/version.sh's); `aos-agent version` and
// the aos_build_info metric report it.
var version = "dev"

func init() {
	register("version", "print the agent version", func(ctx context.Context, args []string) int {
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		if err := fs.Parse(args); err != nil {
			return 2
		}
		v := version
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v = "dev-" + s.Value[:12]
				}
			}
		}
		fmt.Println("aos-agent", v)
		return 0
	})
}
