package rpc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Wire constants captured from oslo.messaging 14.0.3 (envelope 2.0).
const (
	envelopeVersion = "2.0"
	contentType     = "application/json"
	contentEncoding = "utf-8"
	contextPrefix   = "_context_"
)

// newID returns a uuid4-style 32-hex string, the shape oslo uses for
// _msg_id, _unique_id and queue-name suffixes.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}

// envelope double-encodes msg the way oslo's serialize_msg does.
func envelope(msg any) ([]byte, error) {
	inner, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"oslo.version": envelopeVersion, "oslo.message": string(inner)})
}

// errMalformed marks a request that cannot be dispatched; it is answered with
// a failure when it names a reply queue.
var errMalformed = errors.New("malformed message")

// unwrapEnvelope returns the inner message object of body: the decoded
// "oslo.message" when both envelope keys are present, else the body itself
// (legacy 1.0 form). Invalid UTF-8 is decoded leniently (so the reply ids can
// still be read) and reported as an error.
func unwrapEnvelope(body []byte) (map[string]json.RawMessage, error) {
	var badUTF8 error
	if !utf8.Valid(body) {
		badUTF8 = fmt.Errorf("%w: body is not valid UTF-8", errMalformed)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		return nil, fmt.Errorf("%w: body is not a JSON object: %v", errMalformed, err)
	}
	rawVer, hasVer := outer["oslo.version"]
	rawMsg, hasMsg := outer["oslo.message"]
	if !hasVer || !hasMsg {
		return outer, badUTF8
	}
	var ver, inner string
	if err := json.Unmarshal(rawMsg, &inner); err != nil {
		return nil, fmt.Errorf("%w: oslo.message is not a string", errMalformed)
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal([]byte(inner), &msg); err != nil {
		return nil, fmt.Errorf("%w: oslo.message is not a JSON object: %v", errMalformed, err)
	}
	if err := json.Unmarshal(rawVer, &ver); err != nil || !versionCompatible(envelopeVersion, ver) {
		return msg, fmt.Errorf("%w: unsupported envelope version %s", errMalformed, rawVer)
	}
	return msg, badUTF8
}

// messageIDs are the keys needed to answer or deduplicate a message.
type messageIDs struct {
	MsgID    string `json:"_msg_id"`
	ReplyQ   string `json:"_reply_q"`
	UniqueID string `json:"_unique_id"`
}

// peekIDs reads only the ids of an enveloped or legacy message: decoding
// into a struct skips args and context without building them, which keeps
// an oversized request from costing more than one copy of its body.
func peekIDs(body []byte) (ids messageIDs, ok bool) {
	var outer struct {
		Message *string `json:"oslo.message"`
		messageIDs
	}
	if json.Unmarshal(body, &outer) != nil {
		return ids, false
	}
	if outer.Message == nil {
		return outer.messageIDs, true
	}
	return ids, json.Unmarshal([]byte(*outer.Message), &ids) == nil
}

// versionCompatible is oslo's version_is_compatible: same major, requested
// minor not above ours.
func versionCompatible(ours, requested string) bool {
	oMaj, oMin, ok1 := parseVersion(ours)
	rMaj, rMin, ok2 := parseVersion(requested)
	return ok1 && ok2 && oMaj == rMaj && rMin <= oMin
}

func parseVersion(v string) (major, minor int, ok bool) {
	maj, min, hasMin := strings.Cut(v, ".")
	var err error
	if major, err = strconv.Atoi(maj); err != nil {
		return 0, 0, false
	}
	if hasMin {
		// oslo accepts x.y.z; the patch level never affects compatibility.
		min, _, _ = strings.Cut(min, ".")
		if minor, err = strconv.Atoi(min); err != nil {
			return 0, 0, false
		}
	}
	return major, minor, true
}

// stringField reads a string member, "" when absent or not a string.
func stringField(m map[string]json.RawMessage, key string) string {
	var s string
	if raw, ok := m[key]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// reply is the inner message of every reply and call-monitor heartbeat.
type reply struct {
	Result   json.RawMessage `json:"result"`
	Failure  *string         `json:"failure"`
	Ending   bool            `json:"ending"`
	MsgID    string          `json:"_msg_id"`
	UniqueID string          `json:"_unique_id"`
}

// failure is oslo's serialised exception (common.serialize_remote_exception).
type failure struct {
	Class   string         `json:"class"`
	Module  string         `json:"module"`
	Message string         `json:"message"`
	TB      []string       `json:"tb"`
	Args    []string       `json:"args"`
	Kwargs  map[string]any `json:"kwargs"`
}

// Python modules named in failures. Clients cannot import them, so they raise
// oslo's RemoteError carrying the class name, which is what callers match on.
const (
	agentModule      = "aos_agent.exceptions"
	dispatcherModule = "oslo_messaging.rpc.dispatcher"
)

// RemoteKwargs is implemented by errors that carry structured fields for the
// caller, sent as the failure's kwargs (e.g. the host_id holding a lock).
type RemoteKwargs interface {
	RemoteKwargs() map[string]any
}

// remoteClass is implemented by errors that choose their own remote class and
// module (the dispatcher's NoSuchMethod/UnsupportedVersion).
type remoteClass interface {
	remoteClass() (class, module string)
}

func encodeFailure(err error, class, module string) string {
	var rc remoteClass
	if errors.As(err, &rc) {
		class, module = rc.remoteClass()
	}
	f := failure{Class: class, Module: module, Message: err.Error(), TB: []string{}, Args: []string{err.Error()}, Kwargs: map[string]any{}}
	var rk RemoteKwargs
	if errors.As(err, &rk) {
		f.Kwargs = rk.RemoteKwargs()
	}
	b, _ := json.Marshal(f) // only strings and caller-provided JSON-safe kwargs
	return string(b)
}
