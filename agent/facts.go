package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/aos-agent/aos-agent/agent/cluster"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/hostcfg"
	"go.uber.org/zap"
)

// facts is get_host_facts: what the cluster view compares across hosts.
// Like get_status it reads the host afresh; it adds sanlock's view of the
// other hosts (gets), versions, the initiator name and the clock, stamped
// last so the caller's round trip bounds its offset.
func (d *Daemon) facts(ctx context.Context) (any, error) {
	snap := d.monitor.Poll(ctx)
	errs := map[string]string{}
	for c, err := range snap.Errors {
		errs[c] = err.Error()
	}
	gets, err := d.monitor.Sanlock.Gets(ctx)
	if err != nil {
		errs["sanlock_gets"] = err.Error()
	}
	f := cluster.HostFacts{
		Host: d.cfg.Host, AgentVersion: d.opts.Version, LVMVersion: d.lvmVer(), SanlockVersion: snap.SanlockVersion,
		Ready: d.ready.Load(), Recovery: d.recoveryStatus()["state"].(string),
		Lockspaces: []cluster.LockspaceFacts{}, CollectorErrors: errs,
	}
	if f.InitiatorName, err = readInitiatorName(d.cfg.InitiatorNameFile); err != nil {
		errs["initiator_name"] = err.Error()
	}
	if f.ConfiguredHostID, err = readHostID(d.cfg.LVMLocalConf); err != nil {
		errs["lvmlocal_conf"] = err.Error()
	}
	for _, vg := range d.cfg.LVM.VolumeGroups {
		l := snap.Lockspaces[vg]
		lf := cluster.LockspaceFacts{VG: vg, Lockspace: l.Name, State: string(l.State()), HostID: l.HostID,
			Generation: l.Generation, IOTimeout: l.IOTimeout, Peers: []cluster.Peer{}}
		for _, g := range gets {
			if g.Name != l.Name {
				continue
			}
			for _, h := range g.Hosts {
				lf.Peers = append(lf.Peers, cluster.Peer{HostID: h.HostID, Generation: h.Generation, State: string(h.State)})
			}
		}
		f.Lockspaces = append(f.Lockspaces, lf)
		held, err := d.volumes.Holdings(ctx, vg)
		if err != nil && !errors.Is(err, context.Canceled) {
			errs["holdings_"+vg] = err.Error()
			d.log.Warn("host facts: cannot list holdings", zap.String("vg", vg), zap.Error(err))
		}
		f.Holdings = append(f.Holdings, held...)
	}
	if f.Holdings == nil {
		f.Holdings = []volumes.Holding{}
	}
	if alias := d.cfg.LVM.MultipathAlias; alias != "" {
		f.Multipath = &cluster.MultipathFacts{Alias: alias}
		if m := snap.Map; m != nil {
			f.Multipath.Present, f.Multipath.Queueing = true, m.Queueing
			f.Multipath.PathsTotal, f.Multipath.PathsActive = len(m.Paths()), len(m.ActivePaths())
		}
	}
	f.TimeUnixMs = d.now().UnixMilli()
	return f, nil
}

// readHostID reads local/host_id from lvmlocal.conf; a missing file or
// key is 0 (unset).
func readHostID(path string) (uint64, error) {
	if path == "" {
		return 0, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, ok := hostcfg.GetLVM(b, "local", "host_id")
	if !ok {
		return 0, nil
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: local/host_id %q is not a number", path, v)
	}
	return id, nil
}

// readInitiatorName reads open-iscsi's "InitiatorName=..." line; a missing
// file is no name (a host without iSCSI), not an error.
func readInitiatorName(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "InitiatorName="); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", nil
}
