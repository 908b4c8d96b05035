package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aos-agent/aos-agent/agent/cluster"
	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/agent/rpc"
)

func init() {
	register("cluster", "ask every agent (one fanout call): lock owners, per-host facts, configuration mistakes with fixes", runCluster)
	register("status", "this host at a glance, as its agent reports it: lockspaces, paths, LVs held and since when, recovery", runStatus)
}

func runCluster(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultPath, "agent configuration file (broker, exchange, topic)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	watch := fs.Duration("watch", 0, "ask again at this interval until interrupted (0: once)")
	wait := fs.Duration("wait", 3*time.Second, "how long answers are gathered")
	expect := fs.String("expect", "", "comma-separated hosts that must answer (hosts sanlock sees alive are expected anyway)")
	maxOffset := fs.Duration("max-clock-offset", cluster.DefaultMaxClockOffset, "clock offset reported as a finding")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "aos-agent cluster:", err)
		return 2
	}
	client, code := agentClient(cfg, "cluster")
	if client == nil {
		return code
	}
	defer client.Close()
	o := cluster.Options{Wait: *wait, MaxClockOffset: *maxOffset}
	if *expect != "" {
		o.Expect = strings.Split(*expect, ",")
	}
	for {
		rep, err := cluster.Gather(ctx, client, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aos-agent cluster:", err)
			return 1
		}
		if *watch > 0 && !*asJSON {
			fmt.Print("\033[H\033[2J")
		}
		if *asJSON {
			_ = json.NewEncoder(os.Stdout).Encode(rep)
		} else {
			rep.Print(os.Stdout, time.Now())
		}
		if *watch <= 0 {
			if len(rep.Findings) > 0 || len(rep.Silent) > 0 {
				return 1
			}
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(*watch):
		}
	}
}

func runStatus(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultPath, "agent configuration file (broker and this host's name)")
	asJSON := fs.Bool("json", false, "print the agent's facts as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the agent")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "aos-agent status:", err)
		return 2
	}
	client, code := agentClient(cfg, "status")
	if client == nil {
		return code
	}
	defer client.Close()
	start := time.Now()
	raw, err := client.Call(ctx, cfg.Host, cluster.Method, map[string]any{}, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aos-agent status: the agent of %s did not answer through the broker (%s): %v\n"+
			"  check: systemctl status aos-agent; journalctl -u aos-agent\n", cfg.Host, rpc.RedactURL(cfg.TransportURL), err)
		return 1
	}
	rtt := time.Since(start)
	if *asJSON {
		os.Stdout.Write(append(raw, '\n'))
		return 0
	}
	var f cluster.HostFacts
	if err := json.Unmarshal(raw, &f); err != nil {
		fmt.Fprintln(os.Stderr, "aos-agent status: unreadable answer:", err)
		return 1
	}
	printStatus(os.Stdout, f, rpc.RedactURL(cfg.TransportURL), rtt, time.Now())
	if !f.Ready || f.Recovery != "idle" {
		return 1
	}
	return 0
}

// agentClient connects to the broker the agent configuration names.
func agentClient(cfg *config.Config, cmd string) (*rpc.Client, int) {
	rc := cfg.RPC()
	rc.Server = "" // a caller, not the host's RPC server
	client, err := rpc.NewClient(rc)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aos-agent %s: %v\n", cmd, err)
		return nil, 2
	}
	return client, 0
}

func printStatus(w io.Writer, f cluster.HostFacts, broker string, rtt time.Duration, now time.Time) {
	ready := "ready"
	if !f.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "%s: agent %s, %s; broker %s (answered in %s)\n", f.Host, f.AgentVersion, ready, broker, rtt.Round(time.Millisecond))
	fmt.Fprintf(w, "versions: lvm %s, sanlock %s; initiator %s\n", dash(f.LVMVersion), dash(f.SanlockVersion), dash(f.InitiatorName))
	fmt.Fprintf(w, "recovery: %s\n", f.Recovery)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nLOCKSPACE\tVG\tSTATE\tHOST_ID\tGEN\tIO_TIMEOUT\tHOSTS LIVE")
	for _, ls := range f.Lockspaces {
		var live []string
		for _, p := range ls.Peers {
			if p.State == "LIVE" {
				live = append(live, fmt.Sprint(p.HostID))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", ls.Lockspace, ls.VG, ls.State, ls.HostID, ls.Generation, ls.IOTimeout, dash(strings.Join(live, ",")))
	}
	tw.Flush()
	if m := f.Multipath; m != nil {
		if m.Present {
			fmt.Fprintf(w, "\nmultipath %s: %d of %d paths active, queueing %s\n", m.Alias, m.PathsActive, m.PathsTotal, m.Queueing)
		} else {
			fmt.Fprintf(w, "\nmultipath %s: MAP MISSING\n", m.Alias)
		}
	}
	fmt.Fprintf(w, "\nLVs held or active here: %d\n", len(f.Holdings))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range f.Holdings {
		mode := string(h.Mode)
		if mode == "" {
			mode = "ACTIVE WITHOUT LOCK"
		}
		since := "-"
		if h.Since != nil {
			since = h.Since.UTC().Format(time.RFC3339) + " (" + now.Sub(*h.Since).Round(time.Second).String() + ")"
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\tsince %s\n", h.VG, h.LV, mode, since)
	}
	tw.Flush()
	for c, e := range f.CollectorErrors {
		fmt.Fprintf(w, "collector %s: %s\n", c, e)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
