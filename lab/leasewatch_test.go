//go:build lab

package lab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// watchLeases reads the delta leases of host ids 1..hosts from the VG's
// lvmlock LV through each path device of g's LUN and through the map, once
// a second until ctx ends, and appends a line per read to file: the owner
// generation and timestamp each device returns. sanlock fails a lockspace
// when its lease reads back other than it last wrote ("delta_renew reread
// mismatch"); these lines show which device disagreed and when.
func watchLeases(ctx context.Context, g run.Runner, hosts int, file string) {
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer f.Close()
	table, err := g.Run(ctx, run.Cmd{Argv: []string{"dmsetup", "table", vg + "-lvmlock"}})
	fields := strings.Fields(string(table.Stdout))
	devs, derr := PathDevices(ctx, g)
	if err != nil || derr != nil || len(fields) < 5 {
		fmt.Fprintf(f, "no lvmlock table or paths: %v %v %q\n", err, derr, table.Stdout)
		return
	}
	start := fields[4] // "0 524288 linear 253:0 2048": the LV's first sector on the LUN
	var sh strings.Builder
	fmt.Fprintf(&sh, "printf '%%s' \"$(date +%%T.%%N)\"; ")
	for _, d := range append(devs, "mapper/"+LUNMap) {
		for h := 1; h <= hosts; h++ {
			// leader_record: owner_generation at byte 40, timestamp at 152.
			fmt.Fprintf(&sh, "b=$(dd if=/dev/%s iflag=direct bs=512 skip=$((%s+%d)) count=1 2>/dev/null | od -An -t u8 -v | tr -s ' \\n' ' '); "+
				"set -- $b; printf ' %s:h%d=g%%s/ts%%s' \"${6:-?}\" \"${20:-?}\"; ", d, start, h-1, d, h)
		}
	}
	sh.WriteString("echo")
	for {
		res, err := g.Run(ctx, run.Cmd{Argv: []string{"sh", "-c", sh.String()}, Timeout: 30 * time.Second})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fmt.Fprintf(f, "%s error %v\n", time.Now().Format("15:04:05.000"), err)
		} else {
			f.Write(res.Stdout)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
