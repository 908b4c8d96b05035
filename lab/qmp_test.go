package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// fakeQEMU answers QMP as qemu 7.2 does: greeting, then one reply per
// command, with an event in between to be skipped.
func fakeQEMU(t *testing.T) (string, <-chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 10)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}` + "\n"))
		r := bufio.NewScanner(conn)
		for r.Scan() {
			var req struct {
				Execute   string          `json:"execute"`
				Arguments json.RawMessage `json:"arguments"`
			}
			json.Unmarshal(r.Bytes(), &req)
			got <- req.Execute + " " + string(req.Arguments)
			switch req.Execute {
			case "device_add":
				conn.Write([]byte(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "DEVICE_ADDED"}` + "\n"))
				conn.Write([]byte(`{"return": {}}` + "\n"))
			case "query-status":
				conn.Write([]byte(`{"return": {"status": "running", "running": true}}` + "\n"))
			case "blockdev-add":
				conn.Write([]byte(`{"error": {"class": "GenericError", "desc": "Duplicate nodes with node-name='lunp0'"}}` + "\n"))
			default:
				conn.Write([]byte(`{"return": {}}` + "\n"))
			}
		}
	}()
	return sock, got
}

func TestQMPExecute(t *testing.T) {
	sock, got := fakeQEMU(t)
	ctx := context.Background()
	q, err := DialQMP(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if c := <-got; c != "qmp_capabilities " {
		t.Fatalf("first command %q", c)
	}
	var st struct{ Status string }
	{
		err := q.Execute(ctx, "query-status", nil, &st)
		if err != nil {
			t.Fatalf("query-status: err = %v, want nil", err)
		}
		if st.Status != "running" {
			t.Fatalf("query-status: st.Status = %q, want \"running\"", st.Status)
		}
	}
	<-got
	if err := q.Execute(ctx, "device_add", map[string]any{"driver": "scsi-hd", "wwn": uint64(0x5000c50015ea71ac)}, nil); err != nil {
		t.Fatalf("device_add past an event: %v", err)
	}
	if c := <-got; c != `device_add {"driver":"scsi-hd","wwn":5764824127192592812}` {
		t.Fatalf("sent %q", c)
	}
	err = q.Execute(ctx, "blockdev-add", map[string]any{"node-name": "lunp0"}, nil)
	if err == nil {
		t.Fatal("QMP error not returned: err = nil, want non-nil")
	}
	if !strings.Contains(err.Error(), "GenericError: Duplicate nodes") {
		t.Fatalf("QMP error not returned: err.Error() = %q, want it to contain \"GenericError: Duplicate nodes\"", err.Error())
	}
}
