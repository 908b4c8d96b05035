package cluster

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Print writes the view for an operator: hosts, the lock-owner map,
// findings with what to do.
func (r *Report) Print(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "cluster: %d host(s) answered within %s, the last after %s (%d messages: one fanout request, %d replies)\n",
		len(r.Answered), r.Elapsed, r.LastAnswer.Round(time.Millisecond), r.Messages, r.Messages-1)
	for _, s := range r.Silent {
		fmt.Fprintf(w, "  NOT ANSWERING: %s\n", s)
	}
	for _, f := range r.Failed {
		fmt.Fprintf(w, "  FAILED ANSWER: %s\n", f)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tHOST_ID\tGEN\tLEASE\tINITIATOR\tAGENT\tLVM\tSANLOCK\tIO_TIMEOUT\tQUEUEING\tCLOCK")
	for _, h := range r.Answered {
		var ids, gens, states, ios []string
		for _, ls := range h.Lockspaces {
			ids = append(ids, fmt.Sprint(ls.HostID))
			gens = append(gens, fmt.Sprint(ls.Generation))
			states = append(states, ls.State)
			ios = append(ios, fmt.Sprint(ls.IOTimeout))
		}
		q := "-"
		if h.Multipath != nil {
			q = h.Multipath.Queueing
			if !h.Multipath.Present {
				q = "no map"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%+.3fs ±%.3fs\n", h.Host, strings.Join(ids, ","), strings.Join(gens, ","),
			strings.Join(states, ","), dash(h.InitiatorName), dash(h.AgentVersion), dash(h.LVMVersion), dash(h.SanlockVersion),
			strings.Join(ios, ","), q, h.ClockOffset.Seconds(), h.ClockUncertainty.Seconds())
	}
	tw.Flush()

	fmt.Fprintln(w, "\nfence budget (the lease fails 8 × io_timeout after the last renewal)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tMULTIPATH_QUEUES\tKILL_COMMAND\tQEMU_ERROR_POLICIES")
	for _, h := range r.Answered {
		t := h.Timeouts
		if t == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\n", h.Host)
			continue
		}
		queue := fmt.Sprintf("%d s (%s × %d s)", t.MultipathQueueSeconds, t.Multipath.NoPathRetry, t.Multipath.PollingInterval)
		if t.MultipathQueueSeconds < 0 {
			queue = "forever (" + t.Multipath.NoPathRetry + ")"
		}
		pols := "no libvirt"
		if t.QemuErrorPolicies != nil {
			var parts []string
			for _, p := range sortedKeys(t.QemuErrorPolicies) {
				parts = append(parts, fmt.Sprintf("%s %d", orUnset(p), t.QemuErrorPolicies[p]))
			}
			pols = dash(strings.Join(parts, ", "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Host, queue, dash(t.KillCommand), pols)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nlock owners (%d LVs held or active)\n", len(r.Owners))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VG/LV\tHOLDERS\tPROBLEMS")
	for _, o := range r.Owners {
		var hs []string
		for _, h := range o.Holders {
			mode := map[string]string{"exclusive": "ex", "shared": "sh", "": "NO LOCK"}[h.Mode]
			if h.Offline {
				mode += " (error table)"
			}
			since := ""
			if h.Since != nil {
				since = " for " + now.Sub(*h.Since).Round(time.Second).String()
			}
			lease := ""
			if h.Lease != "joined" {
				lease = ", lease " + h.Lease
			}
			hs = append(hs, fmt.Sprintf("%s %s%s%s", h.Host, mode, since, lease))
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\n", o.VG, o.LV, strings.Join(hs, "; "), dash(strings.Join(o.Problems, ",")))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nfindings: %d\n", len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  [%s] %s: %s\n      fix: %s\n", f.Severity, f.Kind, f.Message, f.Fix)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orUnset(policy string) string {
	if policy == "" {
		return "unset"
	}
	return policy
}
