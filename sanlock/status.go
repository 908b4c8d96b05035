package sanlock

import (
	"fmt"
	"strings"
)

// Status is `sanlock client status [-D]` (sanlock src/client_cmd.c
// status_*; the -D key=value lines come from src/cmd.c print_state_*).
type Status struct {
	DaemonName string
	Daemon     Fields // -D keys of the daemon line: io_timeout, monotime, use_watchdog, ...
	Clients    []Process
	Lockspaces []SpaceStatus
	Resources  []Resource
}

// Process is a "p <pid> <name>" line; helper threads print pid -1.
type Process struct {
	PID    int
	Name   string
	Fields Fields
}

// SpaceStatus is an "s name:host_id:path:offset[ ADD|REM]" line and its -D keys.
type SpaceStatus struct {
	Name   string
	HostID uint64
	Path   string
	Offset uint64
	// Pending is "ADD" while the lockspace is being joined and "REM" while
	// it is being left; empty for a joined lockspace.
	Pending string
	Fields  Fields
}

// IOTimeout is the lockspace's io_timeout in seconds, 0 when not printed.
func (s *SpaceStatus) IOTimeout() int { return s.Fields.Int("io_timeout") }

// Resource is an "r ls:name:path:offset:lver|SH p pid[ ADD|REM|ORPHAN]" line.
type Resource struct {
	Lockspace string
	Name      string // for lvmlockd: the LV UUID, or VGLK / GLLK
	Path      string
	Offset    uint64
	Shared    bool   // printed as ":SH"
	Version   uint64 // lease version of an exclusive lease
	PID       int
	Pending   string // ADD, REM or ORPHAN
	Fields    Fields
}

// Lockspace returns the lockspace called name, or nil.
func (s *Status) Lockspace(name string) *SpaceStatus {
	for i := range s.Lockspaces {
		if s.Lockspaces[i].Name == name {
			return &s.Lockspaces[i]
		}
	}
	return nil
}

// ParseStatus parses `sanlock client status` with or without -D. Indented
// key=value lines belong to the record printed above them; indented lines
// with no record above (output filtered through grep) are dropped.
func ParseStatus(b []byte) (*Status, error) {
	st := &Status{}
	err := records(b, func(n int, l string) (Fields, error) {
		kind, rest, _ := strings.Cut(l, " ")
		var cur Fields
		var err error
		switch kind {
		case "daemon":
			st.DaemonName = rest
			st.Daemon = Fields{}
			cur = st.Daemon
		case "p":
			cur, err = st.addProcess(rest)
		case "s":
			cur, err = st.addSpace(rest)
		case "r":
			cur, err = st.addResource(rest)
		}
		// a newer record kind returns nil: skip it and its keys
		if err != nil {
			return nil, fmt.Errorf("sanlock status line %d: %w", n, err)
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (st *Status) addProcess(rest string) (Fields, error) {
	pidStr, name, _ := strings.Cut(rest, " ")
	pid, err := atoiField("pid", pidStr)
	if err != nil {
		return nil, err
	}
	st.Clients = append(st.Clients, Process{PID: pid, Name: name, Fields: Fields{}})
	return st.Clients[len(st.Clients)-1].Fields, nil
}

func (st *Status) addSpace(rest string) (Fields, error) {
	ref, pending, _ := strings.Cut(rest, " ")
	r, err := parseDiskRef(ref)
	if err != nil {
		return nil, err
	}
	hostID, err := uintField("host_id", r.second)
	if err != nil {
		return nil, err
	}
	st.Lockspaces = append(st.Lockspaces, SpaceStatus{
		Name: r.name, HostID: hostID, Path: r.path, Offset: r.offset,
		Pending: strings.TrimSpace(pending), Fields: Fields{},
	})
	return st.Lockspaces[len(st.Lockspaces)-1].Fields, nil
}

func (st *Status) addResource(rest string) (Fields, error) {
	words := strings.Fields(rest)
	if len(words) < 3 || words[1] != "p" {
		return nil, fmt.Errorf("malformed resource %q", rest)
	}
	pid, err := atoiField("pid", words[2])
	if err != nil {
		return nil, err
	}
	res := Resource{PID: pid, Fields: Fields{}}
	if len(words) > 3 {
		res.Pending = words[3]
	}
	// ls:name[:path:offset]:lver|SH — the last field is the lease version.
	ref := words[0]
	i := strings.LastIndexByte(ref, ':')
	if i < 0 {
		return nil, fmt.Errorf("malformed resource %q", rest)
	}
	if ver := ref[i+1:]; ver == "SH" {
		res.Shared = true
	} else if res.Version, err = uintField("lease version", ver); err != nil {
		return nil, err
	}
	r, err := parseDiskRef(ref[:i])
	if err != nil {
		return nil, err
	}
	res.Lockspace, res.Name, res.Path, res.Offset = r.name, r.second, r.path, r.offset
	st.Resources = append(st.Resources, res)
	return st.Resources[len(st.Resources)-1].Fields, nil
}
