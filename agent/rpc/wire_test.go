package rpc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
)

// capturedPublish is one line of testdata/oslo_publishes.jsonl, frames
// recorded between oslo.messaging 14.0.3 and RabbitMQ 3.10.8.
type capturedPublish struct {
	Who    string `json:"who"`
	Method string `json:"method"`
	Args   struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routing_key"`
	} `json:"args"`
	Body string `json:"body"`
}

func loadCapture(t *testing.T) []capturedPublish {
	t.Helper()
	f, err := os.Open("testdata/oslo_publishes.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []capturedPublish
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var p capturedPublish
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.Method == "basic.publish" && p.Body != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("no publishes in capture")
	}
	return out
}

func TestCapturedRequestsDecode(t *testing.T) {
	requests := 0
	for _, p := range loadCapture(t) {
		if p.Args.Exchange == "" { // replies go to the default exchange
			continue
		}
		msg, err := unwrapEnvelope([]byte(p.Body))
		if err != nil {
			t.Fatalf("%s: %v", p.Body, err)
		}
		req, replyQ, _, err := decodeRequest(msg)
		if err != nil && stringField(msg, "namespace") == "" {
			t.Fatalf("%s: %v", p.Body, err)
		}
		if (req.MsgID == "") != (replyQ == "") {
			t.Errorf("call ids half present in %s", p.Body)
		}
		requests++
	}
	if requests == 0 {
		t.Fatal("no requests in capture")
	}
}

func TestCapturedFirstCall(t *testing.T) {
	p := loadCapture(t)[0]
	msg, err := unwrapEnvelope([]byte(p.Body))
	if err != nil {
		t.Fatal(err)
	}
	req, replyQ, timeout, err := decodeRequest(msg)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "ping" {
		t.Errorf("got: req.Method = %q, want \"ping\"", req.Method)
	}
	if req.MsgID != "43f1c64d13ac45bcb4f69220d8aa24f8" {
		t.Errorf("got: req.MsgID = %q, want \"43f1c64d13ac45bcb4f69220d8aa24f8\"", req.MsgID)
	}
	if replyQ != "reply_307f599a36e44f4cbbbb20fc22f7e4cc" {
		t.Errorf("got: replyQ = %q, want \"reply_307f599a36e44f4cbbbb20fc22f7e4cc\"", replyQ)
	}
	if timeout != 0 {
		t.Errorf("got: timeout = %v, want 0", timeout)
	}
	if string(req.Args["vol"]) != `"volume-1"` {
		t.Errorf("args/context: string(req.Args[\"vol\"]) = %q, want `\"volume-1\"`", string(req.Args["vol"]))
	}
	if req.Context["request_id"] != "req-0f1e2d3c" {
		t.Errorf("args/context: req.Context[\"request_id\"] = %q, want \"req-0f1e2d3c\"", req.Context["request_id"])
	}
	if req.Context["is_admin"] != true {
		t.Errorf("args/context: req.Context[\"is_admin\"] = %v, want true", req.Context["is_admin"])
	}
}

func TestCapturedRepliesDecode(t *testing.T) {
	var failures, results int
	for _, p := range loadCapture(t) {
		if p.Args.Exchange != "" || !strings.HasPrefix(p.Args.RoutingKey, "reply_") {
			continue
		}
		msg, err := unwrapEnvelope([]byte(p.Body))
		if err != nil {
			continue // the capture holds deliberately broken replies from the fake server probes
		}
		raw, _ := json.Marshal(msg)
		var r reply
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		if r.Failure != nil {
			var re *RemoteError
			if !errors.As(decodeFailure(*r.Failure), &re) {
				t.Error("failure not decoded: errors.As(decodeFailure(*r.Failure), &re) = false, want true")
			}
			if re.Class == "" {
				t.Errorf("failure not decoded: re.Class = %v, want != \"\"", re.Class)
			}
			if re.Message == "" {
				t.Errorf("failure not decoded: re.Message = %v, want != \"\"", re.Message)
			}
			failures++
		} else {
			results++
		}
	}
	if failures == 0 {
		t.Fatalf("capture gave: failures = %v, want != 0", failures)
	}
	if results == 0 {
		t.Fatalf("capture gave: results = %v, want != 0", results)
	}
}

func TestEnvelopeRoundTripIsDoubleEncoded(t *testing.T) {
	body, err := envelope(reply{Result: json.RawMessage(`{"a":1}`), Ending: true, MsgID: "m1", UniqueID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	var outer map[string]any
	if err := json.Unmarshal(body, &outer); err != nil {
		t.Fatal(err)
	}
	if outer["oslo.version"] != "2.0" {
		t.Errorf("version %v", outer["oslo.version"])
	}
	if _, isString := outer["oslo.message"].(string); !isString {
		t.Fatalf("oslo.message must be a JSON string, got %T", outer["oslo.message"])
	}
	msg, err := unwrapEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg["failure"]) != "null" {
		t.Errorf("inner: string(msg[\"failure\"]) = %q, want \"null\"", string(msg["failure"]))
	}
	if string(msg["ending"]) != "true" {
		t.Errorf("inner: string(msg[\"ending\"]) = %q, want \"true\"", string(msg["ending"]))
	}
	if string(msg["result"]) != `{"a":1}` {
		t.Errorf("inner: string(msg[\"result\"]) = %q, want `{\"a\":1}`", string(msg["result"]))
	}
}

func TestUnwrapEnvelopeMalformed(t *testing.T) {
	for name, tc := range map[string]struct {
		body    string
		wantMsg bool // ids still readable for a failure reply
	}{
		"not JSON":         {`not json {`, false},
		"JSON array":       {`[1,2]`, false},
		"inner not object": {`{"oslo.version":"2.0","oslo.message":"[1]"}`, false},
		"inner not string": {`{"oslo.version":"2.0","oslo.message":{"method":"x"}}`, false},
		"version 3.0":      {`{"oslo.version":"3.0","oslo.message":"{\"_msg_id\":\"m\"}"}`, true},
		"version 2.1":      {`{"oslo.version":"2.1","oslo.message":"{\"_msg_id\":\"m\"}"}`, true},
		"invalid UTF-8":    {"{\"method\":\"echo\",\"s\":\"\xff\",\"_msg_id\":\"m\"}", true},
	} {
		msg, err := unwrapEnvelope([]byte(tc.body))
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
		if (msg != nil) != tc.wantMsg {
			t.Errorf("%s: msg %v", name, msg)
		}
		if tc.wantMsg && stringField(msg, "_msg_id") != "m" {
			t.Errorf("%s: _msg_id lost", name)
		}
	}
}

func TestLegacyBodyAccepted(t *testing.T) {
	msg, err := unwrapEnvelope([]byte(`{"method":"echo","args":{"a":1},"_msg_id":"m","_reply_q":"reply_x","_timeout":4}`))
	if err != nil {
		t.Fatal(err)
	}
	req, replyQ, timeout, err := decodeRequest(msg)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if req.Method != "echo" {
		t.Fatalf("req.Method = %q, want \"echo\"", req.Method)
	}
	if replyQ != "reply_x" {
		t.Fatalf("replyQ = %q, want \"reply_x\"", replyQ)
	}
	if timeout != 4 {
		t.Fatalf("timeout = %v, want 4", timeout)
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		inner string
		class string
	}{
		"missing method":  {`{"args":{}}`, "InvalidArgument"},
		"method number":   {`{"method":5}`, "InvalidArgument"},
		"args list":       {`{"method":"x","args":[1]}`, "InvalidArgument"},
		"args string":     {`{"method":"x","args":"a"}`, "InvalidArgument"},
		"namespace given": {`{"method":"x","namespace":"nope"}`, "UnsupportedVersion"},
	} {
		var msg map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.inner), &msg); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := decodeRequest(msg)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if got := failureClass(err); got != tc.class {
			t.Errorf("%s: class %s, want %s", name, got, tc.class)
		}
	}
}

func failureClass(err error) string {
	var f failure
	_ = json.Unmarshal([]byte(encodeFailure(err, errdefs.ClassOf(err).RemoteName(), agentModule)), &f)
	return f.Class
}

type kwErr struct{ error }

func (kwErr) RemoteKwargs() map[string]any { return map[string]any{"host_id": 7} }
func (e kwErr) Unwrap() error              { return e.error }

func TestEncodeFailureLockConflictKwargs(t *testing.T) {
	var f failure
	err := fmt.Errorf("activate: %w", &errdefs.LockConflictError{VG: "vg", LV: "lv", HostID: 9})
	if e := json.Unmarshal([]byte(encodeFailure(err, errdefs.ClassOf(err).RemoteName(), agentModule)), &f); e != nil {
		t.Fatal(e)
	}
	if f.Class != "LockConflict" {
		t.Errorf("f.Class = %q, want \"LockConflict\"", f.Class)
	}
	if f.Kwargs["host_id"] != float64(9) {
		t.Errorf("f.Kwargs[\"host_id\"] = %v, want %v", f.Kwargs["host_id"], float64(9))
	}
}

func TestEncodeFailure(t *testing.T) {
	err := kwErr{&errdefs.LockConflictError{VG: "vg", LV: "lv", HostID: 7}}
	var f failure
	if e := json.Unmarshal([]byte(encodeFailure(err, errdefs.ClassOf(err).RemoteName(), agentModule)), &f); e != nil {
		t.Fatal(e)
	}
	if f.Class != "LockConflict" || f.Module != "aos_agent.exceptions" || f.Message != err.Error() ||
		len(f.Args) != 1 || f.Kwargs["host_id"] != float64(7) || f.TB == nil {
		t.Errorf("%+v", f)
	}
	re := decodeFailure(encodeFailure(err, "LockConflict", agentModule))
	if !errors.Is(re, errdefs.ErrLockConflict) {
		t.Errorf("RemoteError %v does not unwrap to its errdefs class", re)
	}
}

func TestDispatcherVersions(t *testing.T) {
	d := Dispatcher{Version: "1.3", Methods: map[string]Handler{"ping": nil}}
	for _, tc := range []struct {
		version, method, class string
	}{
		{"", "ping", ""}, {"1.0", "ping", ""}, {"1.3", "ping", ""}, {"1.2.9", "ping", ""},
		{"1.4", "ping", "UnsupportedVersion"}, {"2.0", "ping", "UnsupportedVersion"}, {"0.9", "ping", "UnsupportedVersion"},
		{"x", "ping", "UnsupportedVersion"}, {"1.0", "nope", "NoSuchMethod"}, {"2.0", "nope", "UnsupportedVersion"},
	} {
		_, err := d.lookup(&Request{Method: tc.method, Version: tc.version})
		got := ""
		if err != nil {
			got = failureClass(err)
		}
		if got != tc.class {
			t.Errorf("version %q method %s: got %q want %q", tc.version, tc.method, got, tc.class)
		}
	}
}

func TestLogContextDropsToken(t *testing.T) {
	r := &Request{Context: map[string]any{"auth_token": "secret", "request_id": "req-1", "roles": []any{"admin"}}}
	lc := r.LogContext()
	{
		_, leaked := lc["auth_token"]
		if leaked {
			t.Error("leaked = true, want false")
		}
		if lc["request_id"] != "req-1" {
			t.Errorf("lc[\"request_id\"] = %q, want \"req-1\"", lc["request_id"])
		}
	}
}

func TestDedupe(t *testing.T) {
	d := newDedupe(2)
	if !d.add("a") {
		t.Fatal("basic add: d.add(\"a\") = false, want true")
	}
	if d.add("a") {
		t.Fatal("basic add: d.add(\"a\") = true, want false")
	}
	if !d.add("b") {
		t.Fatal("basic add: d.add(\"b\") = false, want true")
	}
	if !d.add("c") {
		t.Fatal("basic add: d.add(\"c\") = false, want true")
	}
	if !d.add("a") { // evicted by c
		t.Error("a should have been evicted")
	}
	d.forget("c")
	if !d.add("c") {
		t.Error("forgotten id must be new again")
	}
	for range 2 {
		if !d.add("") {
			t.Error("empty ids are never duplicates")
		}
	}
}

func TestParseArg(t *testing.T) {
	for in, want := range map[string]string{
		"size=10": "10", "name=vol-1": `"vol-1"`, `o={"a":1}`: `{"a":1}`, "b=true": "true", "e=": `""`, "s=a=b": `"a=b"`,
	} {
		_, v, err := ParseArg(in)
		if err != nil {
			t.Fatalf("%s: err = %v, want nil", in, err)
		}
		if string(v) != want {
			t.Errorf("%s: string(v) = %v, want %v", in, string(v), want)
		}
	}
	if _, _, err := ParseArg("novalue"); err == nil {
		t.Error("want error")
	}
}

func TestPeekIDs(t *testing.T) {
	inner := map[string]any{"method": "m", "args": map[string]any{"blob": strings.Repeat("x", 1<<10)},
		"_msg_id": "m1", "_reply_q": "reply_1", "_unique_id": "u1", "_context_auth_token": "secret"}
	body, err := envelope(inner)
	if err != nil {
		t.Fatal(err)
	}
	want := messageIDs{MsgID: "m1", ReplyQ: "reply_1", UniqueID: "u1"}
	{
		ids, ok := peekIDs(body)
		if !ok {
			t.Error("enveloped: ok = false, want true")
		}
		if ids != want {
			t.Errorf("enveloped: ids = %v, want %v", ids, want)
		}
	}
	legacy, _ := json.Marshal(inner)
	{
		ids, ok := peekIDs(legacy)
		if !ok {
			t.Error("legacy: ok = false, want true")
		}
		if ids != want {
			t.Errorf("legacy: ids = %v, want %v", ids, want)
		}
	}
	for _, bad := range []string{`not json`, `{"oslo.message": "{", "oslo.version": "2.0"}`, `[1]`} {
		if ids, ok := peekIDs([]byte(bad)); ok {
			t.Errorf("%s: peeked %+v", bad, ids)
		}
	}
}
