package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
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
		vg := fs.String("vg", "vol", "name of the shared VG")
		pvGiB := fs.Int64("pv-size-gib", 64, "size of the shared LUN in GiB")
		lvDevices := fs.String("lv-devices", "", "back the LVs with real block devices: sparse files in this directory on loop\n"+
			"devices, linked at /dev/VG/LV while a host has the LV active (root; for programs that\n"+
			"write to the device paths, like cinder's image copy; pick a VG name no real VG has)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if *url == "" {
			fmt.Fprintln(os.Stderr, "aos-lab simulate: --transport-url or AOS_TRANSPORT_URL is required")
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
		c, err := demo.StartCluster(ctx, demo.Options{TransportURL: *url, WorkDir: dir, Topic: *topic, Version: version,
			VG: *vg, LVDevices: *lvDevices, PVSize: *pvGiB << 30},
			strings.Split(*hostList, ","), os.Stderr, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aos-lab simulate:", err)
			return 1
		}
		fmt.Println("READY", dir) // the test driver waits for this line
		go control(os.Stdin, os.Stdout, c)
		<-ctx.Done()
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "aos-lab simulate:", err)
			return 1
		}
		return 0
	})
}

// agentSwitch stops and starts one host's agent and injects faults
// (demo.Cluster).
type agentSwitch interface {
	StopAgent(host string) error
	StartAgent(host string) error
	Fault(host, fault string) error
}

// control reads "stop HOST" and "start HOST" lines (stop or start one
// host's agent, its host keeping its LVs and locks: an agent that is briefly
// down) and "fault HOST FAULT" (demo.Cluster.Fault), and answers each with
// "OK" or "ERR reason".
func control(in io.Reader, out io.Writer, c agentSwitch) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		verb, host, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var err error
		switch verb {
		case "stop":
			err = c.StopAgent(host)
		case "start":
			err = c.StartAgent(host)
		case "fault":
			host, fault, _ := strings.Cut(host, " ")
			err = c.Fault(host, fault)
		default:
			err = fmt.Errorf("unknown command %q (stop HOST, start HOST, fault HOST FAULT)", verb)
		}
		if err != nil {
			fmt.Fprintln(out, "ERR", err)
		} else {
			fmt.Fprintln(out, "OK")
		}
	}
}
