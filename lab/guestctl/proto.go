// Package guestctl is the lab's host↔guest control channel: the host sends
// commands as JSON lines over a virtio-serial port and the guest daemon runs
// them through run.Local, so a lab guest is a run.Runner like any other host.
//
// One request or response per line. Requests carry ids so many can be in
// flight at once; a request with Cancel set cancels the request of that id.
package guestctl

type request struct {
	ID        uint64   `json:"id"`
	Argv      []string `json:"argv,omitempty"`
	Stdin     []byte   `json:"stdin,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	Cancel    bool     `json:"cancel,omitempty"`
}

type response struct {
	ID         uint64 `json:"id"`
	Stdout     []byte `json:"stdout,omitempty"`
	Stderr     []byte `json:"stderr,omitempty"`
	ExitCode   int    `json:"exit_code"`
	DurationNS int64  `json:"duration_ns"`
	TimedOut   bool   `json:"timed_out,omitempty"`
	// Error is set when the command did not exit by itself for another
	// reason than its timeout: it could not start, or it was cancelled.
	Error string `json:"error,omitempty"`
}
