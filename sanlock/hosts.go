package sanlock

import (
	"fmt"
	"strings"
)

// HostStatus is one lockspace of `sanlock client host_status -D`: what this
// host last read from every other host's delta lease.
type HostStatus struct {
	Lockspace string
	Hosts     []HostLease
}

// HostLease is a "<host_id> timestamp <ts>" line and its -D keys
// (last_check, last_live, owner_generation, io_timeout, owner_name, ...).
type HostLease struct {
	HostID    uint64
	Timestamp uint64
	Fields    Fields
}

// ParseHostStatus parses `sanlock client host_status [-s LS] [-D]`. With
// -s, sanlock 3.8.5 prints no "lockspace" header: host lines before any
// header go to an entry whose Lockspace is empty.
func ParseHostStatus(b []byte) ([]HostStatus, error) {
	var out []HostStatus
	err := records(b, func(n int, l string) (Fields, error) {
		words := strings.Fields(l)
		switch {
		case words[0] == "lockspace" && len(words) == 2:
			out = append(out, HostStatus{Lockspace: words[1]})
			return nil, nil
		case len(words) == 3 && words[1] == "timestamp":
			if len(out) == 0 {
				out = append(out, HostStatus{})
			}
			id, err := uintField("host_id", words[0])
			if err != nil {
				return nil, fmt.Errorf("host_status line %d: %w", n, err)
			}
			ts, err := uintField("timestamp", words[2])
			if err != nil {
				return nil, fmt.Errorf("host_status line %d: %w", n, err)
			}
			ls := &out[len(out)-1]
			ls.Hosts = append(ls.Hosts, HostLease{HostID: id, Timestamp: ts, Fields: Fields{}})
			return ls.Hosts[len(ls.Hosts)-1].Fields, nil
		}
		return nil, fmt.Errorf("host_status line %d: unexpected %q", n, l)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Renewal is one record of `sanlock client renewal -s LS` (the lockspace's
// renewal history, oldest first; 180 records by default).
type Renewal struct {
	Timestamp    uint64
	ReadMS       int
	WriteMS      int
	NextTimeouts int
	NextErrors   int
	Fields       Fields
}

// ParseRenewal parses `sanlock client renewal -s LS`. Lines without a
// timestamp key are skipped.
func ParseRenewal(b []byte) ([]Renewal, error) {
	var out []Renewal
	for _, l := range lines(b) {
		f := Fields{}
		f.addTokens(l)
		if _, ok := f["timestamp"]; !ok {
			continue
		}
		out = append(out, Renewal{
			Timestamp: f.Uint("timestamp"), ReadMS: f.Int("read_ms"), WriteMS: f.Int("write_ms"),
			NextTimeouts: f.Int("next_timeouts"), NextErrors: f.Int("next_errors"), Fields: f,
		})
	}
	return out, nil
}

// HostState is sanlock's view of another host (sanlock src/main.c
// host_state_str): FREE, LIVE, FAIL, DEAD or UNKNOWN.
type HostState string

const (
	HostFree    HostState = "FREE"
	HostLive    HostState = "LIVE"
	HostFail    HostState = "FAIL"
	HostDead    HostState = "DEAD"
	HostUnknown HostState = "UNKNOWN"
)

// GetsLockspace is one lockspace of `sanlock client gets -h 1`.
type GetsLockspace struct {
	Name    string
	HostID  uint64
	Path    string
	Offset  uint64
	Pending string // ADD or REM
	Hosts   []GetsHost
	// HostsError is set when sanlock printed "hosts not ready" or
	// "hosts error N" instead of the host list.
	HostsError string
}

// GetsHost is an "h <host_id> gen <gen> timestamp <ts> <state>" line.
type GetsHost struct {
	HostID     uint64
	Generation uint64
	Timestamp  uint64
	State      HostState
}

// ParseGets parses `sanlock client gets [-h 1]` (sanlock src/main.c
// do_client_gets).
func ParseGets(b []byte) ([]GetsLockspace, error) {
	var out []GetsLockspace
	for n, l := range lines(b) {
		words := strings.Fields(l)
		switch {
		case words[0] == "s" && len(words) >= 2:
			r, err := parseDiskRef(words[1])
			if err != nil {
				return nil, fmt.Errorf("gets line %d: %w", n+1, err)
			}
			id, err := uintField("host_id", r.second)
			if err != nil {
				return nil, fmt.Errorf("gets line %d: %w", n+1, err)
			}
			ls := GetsLockspace{Name: r.name, HostID: id, Path: r.path, Offset: r.offset}
			if len(words) > 2 {
				ls.Pending = words[2]
			}
			out = append(out, ls)
		case words[0] == "h" && len(words) >= 6 && words[2] == "gen" && words[4] == "timestamp" && len(out) > 0:
			var h GetsHost
			var err error
			if h.HostID, err = uintField("host_id", words[1]); err == nil {
				if h.Generation, err = uintField("generation", words[3]); err == nil {
					h.Timestamp, err = uintField("timestamp", words[5])
				}
			}
			if err != nil {
				return nil, fmt.Errorf("gets line %d: %w", n+1, err)
			}
			if len(words) > 6 {
				h.State = HostState(words[6])
			}
			ls := &out[len(out)-1]
			ls.Hosts = append(ls.Hosts, h)
		case words[0] == "hosts" && len(out) > 0:
			out[len(out)-1].HostsError = l
		case words[0] == "gets" && len(words) == 3 && words[1] == "error":
			return nil, fmt.Errorf("sanlock: %s", l)
		default:
			return nil, fmt.Errorf("gets line %d: unexpected %q", n+1, l)
		}
	}
	return out, nil
}
