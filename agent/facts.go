package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/aos-agent/aos-agent/agent/cluster"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/virt"
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
	tables, err := lvTables(ctx, dm.New(d.runner, d.cfg.LVM.CommandTimeout))
	if err != nil {
		errs["dm_tables"] = err.Error()
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
			// A host that lost its paths cannot read the VG, which is
			// when the view matters most: the kernel still says which of
			// its LVs are active.
			held = kernelHoldings(vg, tables)
		}
		for i := range held {
			held[i].Offline = tables[[2]string{vg, held[i].LV}]
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
	f.Timeouts = d.timeoutFacts(ctx, errs)
	f.TimeUnixMs = d.now().UnixMilli()
	return f, nil
}

// timeoutFacts reads the settings the fence's timing depends on: a part
// that cannot be read is left empty and named in errs.
func (d *Daemon) timeoutFacts(ctx context.Context, errs map[string]string) *cluster.TimeoutFacts {
	t := &cluster.TimeoutFacts{Multipath: multipath.ReadQueueConfig(d.cfg.MultipathConf,
		filepath.Join(filepath.Dir(d.cfg.MultipathConf), "multipath", "conf.d"))}
	switch queue, forever, err := t.Multipath.QueueFor(); {
	case err != nil || forever:
		t.MultipathQueueSeconds = -1
	default:
		t.MultipathQueueSeconds = int(queue.Seconds())
	}
	if b, err := os.ReadFile(d.cfg.LVMConf); err != nil {
		errs["lvm_conf"] = err.Error()
	} else {
		t.KillCommand, _ = hostcfg.GetLVM(b, "global", "lvmlockctl_kill_command")
	}
	v := virt.New(d.runner, d.cfg.Recovery.LibvirtURI, d.cfg.LVM.CommandTimeout)
	doms, err := v.Domains(ctx)
	if errors.Is(err, virt.ErrUnavailable) {
		return t
	}
	if err != nil {
		errs["qemu_error_policies"] = err.Error()
		return t
	}
	t.QemuErrorPolicies, t.QemuDisksNotStopping = map[string]int{}, []string{}
	for _, dom := range doms {
		pols, err := v.DiskPolicies(ctx, dom)
		if err != nil {
			if !errors.Is(err, virt.ErrNoDomain) {
				errs["qemu_error_policies"] = err.Error()
			}
			continue
		}
		for _, p := range pols {
			if !slices.ContainsFunc(d.cfg.LVM.VolumeGroups, func(vg string) bool { _, ok := virt.LVOf(p.Source, vg); return ok }) {
				continue
			}
			t.QemuErrorPolicies[p.ErrorPolicy]++
			if p.ErrorPolicy != "stop" || p.ReadErrorPolicy != "stop" {
				t.QemuDisksNotStopping = append(t.QemuDisksNotStopping,
					fmt.Sprintf("%s %s: error_policy %s, rerror_policy %s", dom, p.Target, orDefault(p.ErrorPolicy), orDefault(p.ReadErrorPolicy)))
			}
		}
	}
	return t
}

// orDefault names an unset policy by what qemu then does with an EIO.
func orDefault(policy string) string {
	if policy == "" {
		return "unset (qemu reports the EIO)"
	}
	return policy
}

// lvTables maps every LV device-mapper has a table for, as {VG, LV}, to
// whether that table is the error target (fenced).
func lvTables(ctx context.Context, c *dm.Client) (map[[2]string]bool, error) {
	tables, err := c.Tables(ctx)
	if err != nil {
		return nil, err
	}
	out := map[[2]string]bool{}
	for _, t := range tables {
		if vg, lv, ok := dm.UserLV(t.Name); ok {
			out[[2]string{vg, lv}] = t.Errored()
		}
	}
	return out, nil
}

// kernelHoldings lists vg's LVs active here from their device-mapper
// tables alone, without their locks (lvmlockd cannot name a lock without
// the LV's uuid from lvs).
func kernelHoldings(vg string, tables map[[2]string]bool) []volumes.Holding {
	out := []volumes.Holding{}
	for k := range tables {
		if k[0] == vg {
			out = append(out, volumes.Holding{VG: vg, LV: k[1], Active: true})
		}
	}
	slices.SortFunc(out, func(a, b volumes.Holding) int { return strings.Compare(a.LV, b.LV) })
	return out
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
