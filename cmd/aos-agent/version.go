package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	register("version", "print the agent version", func(ctx context.Context, args []string) int {
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
