package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
)

// Request is one decoded RPC request.
type Request struct {
	Method string
	Args   map[string]json.RawMessage
	// Context holds the caller's _context_* keys without the prefix. It may
	// hold a Keystone token: never log it (LogContext gives a safe subset).
	Context map[string]any
	MsgID   string // "" for casts
	Version string // requested API version, "" when the caller set none
}

// LogContext returns the context keys that are safe and useful in logs.
func (r *Request) LogContext() map[string]any {
	out := map[string]any{}
	for _, k := range []string{"request_id", "global_request_id", "user_id", "project_id", "user", "project"} {
		if v, ok := r.Context[k]; ok {
			out[k] = v
		}
	}
	return out
}

// Handler runs one RPC method. Its result is marshalled as the reply's result.
type Handler func(ctx context.Context, req *Request) (any, error)

// Dispatcher maps method names to handlers behind one API version, checked
// the way oslo's dispatcher checks a Target's version.
type Dispatcher struct {
	Version string // e.g. "1.0"; requests may ask for the same major and a minor ≤ this
	Methods map[string]Handler
	// Fanout lists the methods accepted as fanout casts; nil accepts every
	// method. The fanout exchange is open to every agent's user (agents
	// broadcast refreshes), so whatever it may carry, any agent can send.
	Fanout []string
}

// Method names, sorted, for logs and docs.
func (d Dispatcher) names() []string {
	out := make([]string, 0, len(d.Methods))
	for n := range d.Methods {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// dispatcherError is a failure raised by dispatching itself, reported under
// oslo's own class names so clients see what an oslo server would send.
type dispatcherError struct {
	class, msg string
}

func (e *dispatcherError) Error() string                 { return e.msg }
func (e *dispatcherError) remoteClass() (string, string) { return e.class, dispatcherModule }

func (d Dispatcher) lookup(req *Request) (Handler, error) {
	version := req.Version
	if version == "" {
		version = "1.0"
	}
	h, ok := d.Methods[req.Method]
	if !versionCompatible(d.Version, version) {
		return nil, &dispatcherError{"UnsupportedVersion", fmt.Sprintf("Endpoint does not support RPC version %s. Attempted method: %s", version, req.Method)}
	}
	if !ok {
		return nil, &dispatcherError{"NoSuchMethod", "Endpoint does not support RPC method " + req.Method}
	}
	return h, nil
}

// decodeRequest builds a Request from an inner message; on error the ids
// (msgID, replyQ) are still returned when present, so a failure can be sent.
func decodeRequest(msg map[string]json.RawMessage) (req *Request, replyQ string, timeout int, err error) {
	req = &Request{MsgID: stringField(msg, "_msg_id"), Version: stringField(msg, "version"), Context: map[string]any{}}
	replyQ = stringField(msg, "_reply_q")
	if raw, ok := msg["_timeout"]; ok {
		_ = json.Unmarshal(raw, &timeout) // null or non-integer: no call monitor
	}
	for k, v := range msg {
		if name, ok := strings.CutPrefix(k, contextPrefix); ok {
			var val any
			_ = json.Unmarshal(v, &val)
			req.Context[name] = val
		}
	}
	if ns := stringField(msg, "namespace"); ns != "" {
		return req, replyQ, timeout, &dispatcherError{"UnsupportedVersion", fmt.Sprintf("Endpoint does not support RPC version %s. Attempted method: %s", orDefault(req.Version, "1.0"), stringField(msg, "method"))}
	}
	rawMethod, ok := msg["method"]
	if !ok || json.Unmarshal(rawMethod, &req.Method) != nil || req.Method == "" {
		return req, replyQ, timeout, errdefs.Errorf(errdefs.ErrInvalidArgument, "malformed message: missing or non-string method")
	}
	if rawArgs, ok := msg["args"]; ok && string(rawArgs) != "null" {
		if json.Unmarshal(rawArgs, &req.Args) != nil {
			return req, replyQ, timeout, errdefs.Errorf(errdefs.ErrInvalidArgument, "malformed message: args of %s is not an object", req.Method)
		}
	}
	if req.Args == nil {
		req.Args = map[string]json.RawMessage{}
	}
	return req, replyQ, timeout, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
