// Package cluster is the cluster view: every agent's facts gathered with one
// fanout call (get_host_facts), the lock-owner map built from them, and the
// findings that name the configuration mistakes that break a shared VG
// (duplicate host_id or initiator name, clocks apart, timeouts that
// disagree, mixed versions, hosts sanlock sees but no agent answers for).
package cluster

import (
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/multipath"
)

// Method is the RPC method every agent answers with its HostFacts; it is
// accepted as a fanout call, so one message reaches every agent.
const Method = "get_host_facts"

// HostFacts is one agent's get_host_facts reply (docs/rpc.md).
type HostFacts struct {
	Host string `json:"host"`
	// TimeUnixMs is the agent's wall clock when it answered: the view
	// measures each host's clock offset from it and the call's round trip.
	TimeUnixMs     int64  `json:"time_unix_ms"`
	AgentVersion   string `json:"agent_version"`
	LVMVersion     string `json:"lvm_version"`
	SanlockVersion string `json:"sanlock_version"`
	InitiatorName  string `json:"initiator_name"`
	// ConfiguredHostID is lvmlocal.conf's local/host_id (0: unset), what
	// the next lockspace join will use.
	ConfiguredHostID uint64           `json:"configured_host_id"`
	Ready            bool             `json:"ready"`
	Recovery         string           `json:"recovery"` // idle or fenced
	Lockspaces       []LockspaceFacts `json:"lockspaces"`
	Multipath        *MultipathFacts  `json:"multipath"`
	// Timeouts are the settings the fence's arithmetic depends on, as
	// configured on the host.
	Timeouts *TimeoutFacts `json:"timeouts"`
	// Holdings are the LVs locked or active on the host, every VG.
	Holdings        []volumes.Holding `json:"holdings"`
	CollectorErrors map[string]string `json:"collector_errors"`
}

// LockspaceFacts is the host's membership of one VG's lockspace.
type LockspaceFacts struct {
	VG         string `json:"volume_group"`
	Lockspace  string `json:"lockspace"`
	State      string `json:"state"`
	HostID     uint64 `json:"host_id"`
	Generation uint64 `json:"generation"`
	IOTimeout  int    `json:"io_timeout"`
	// Peers is sanlock's verdict on every host_id with a delta lease in
	// the lockspace, as this host reads them (sanlock client gets -h 1).
	Peers []Peer `json:"peers"`
}

// Peer is one host_id of a lockspace as sanlock sees it.
type Peer struct {
	HostID     uint64 `json:"host_id"`
	Generation uint64 `json:"generation"`
	State      string `json:"state"` // LIVE, FAIL, DEAD, UNKNOWN, FREE
}

// MultipathFacts is the shared LUN's map: queueing decides whether a host
// that lost its paths sees I/O errors (and fences) or hangs.
type MultipathFacts struct {
	Alias       string `json:"alias"`
	Present     bool   `json:"present"`
	Queueing    string `json:"queueing"`
	PathsTotal  int    `json:"paths_total"`
	PathsActive int    `json:"paths_active"`
}

// TimeoutFacts are what decides, with the lockspace's io_timeout, whether a
// host that loses its storage is fenced in time: how long multipath queues
// I/O with no path left, whether lvmlockctl runs the agent's kill hook, and
// whether qemu pauses a guest whose disk fails (so recovery can resume it).
type TimeoutFacts struct {
	Multipath multipath.QueueConfig `json:"multipath"`
	// MultipathQueueSeconds is no_path_retry × polling_interval; -1 is
	// forever ("queue"), or a value multipath would not understand.
	MultipathQueueSeconds int `json:"multipath_queue_seconds"`
	// KillCommand is lvm.conf's global/lvmlockctl_kill_command; "" leaves
	// a lost lease to sanlock's watchdog, which resets the host.
	KillCommand string `json:"lvmlockctl_kill_command"`
	// QemuErrorPolicies counts the disks on the agent's VGs of the host's
	// libvirt domains by error_policy ("": unset, qemu reports the EIO);
	// nil when libvirt is not there (a cinder-volume host).
	QemuErrorPolicies map[string]int `json:"qemu_error_policies"`
	// QemuDisksNotStopping names those disks whose guest would not pause
	// on an I/O error ("domain vdb: error_policy report, rerror_policy report").
	QemuDisksNotStopping []string `json:"qemu_disks_not_stopping"`
}

// Time is the agent's clock reading.
func (f HostFacts) Time() time.Time { return time.UnixMilli(f.TimeUnixMs) }
