package agent

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// hostInfo exports, at scrape time, the facts the cluster-wide alert rules
// compare across hosts (configs/alerts): labels that are the same on every
// scrape of a host, so cardinality stays one series per host and VG.
type hostInfo struct {
	d                      *Daemon
	info, hostID, io, wall *prometheus.Desc
}

func newHostInfo(d *Daemon) *hostInfo {
	return &hostInfo{
		d: d,
		info: prometheus.NewDesc("aos_host_info",
			"Always 1; labels carry what must differ (initiator_name) or match (versions) across hosts.",
			[]string{"initiator_name", "lvm_version", "sanlock_version"}, nil),
		hostID: prometheus.NewDesc("aos_lockspace_host_id_info",
			"Always 1 while this host is in the VG's lockspace; host_id is its sanlock host_id (unique per lockspace).",
			[]string{"vg", "host_id"}, nil),
		io: prometheus.NewDesc("aos_lockspace_io_timeout_seconds",
			"sanlock io_timeout of the VG's lockspace on this host: a lease expires at 8 times it, so every host must agree.",
			[]string{"vg"}, nil),
		wall: prometheus.NewDesc("aos_time_seconds",
			"The agent's wall clock at the scrape, like node_time_seconds: minus the scrape's timestamp it is the clock offset.",
			nil, nil),
	}
}

func (h *hostInfo) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.info
	ch <- h.hostID
	ch <- h.io
	ch <- h.wall
}

func (h *hostInfo) Collect(ch chan<- prometheus.Metric) {
	d := h.d
	snap := d.monitor.Last()
	iqn, _ := readInitiatorName(d.cfg.InitiatorNameFile)
	ch <- prometheus.MustNewConstMetric(h.info, prometheus.GaugeValue, 1, iqn, d.lvmVer(), snap.SanlockVersion)
	for _, vg := range d.cfg.LVM.VolumeGroups {
		l := snap.Lockspaces[vg]
		if l == nil || l.HostID == 0 || !l.Joined {
			continue
		}
		ch <- prometheus.MustNewConstMetric(h.hostID, prometheus.GaugeValue, 1, vg, fmt.Sprint(l.HostID))
		ch <- prometheus.MustNewConstMetric(h.io, prometheus.GaugeValue, float64(l.IOTimeout), vg)
	}
	ch <- prometheus.MustNewConstMetric(h.wall, prometheus.GaugeValue, float64(d.now().UnixNano())/1e9)
}
