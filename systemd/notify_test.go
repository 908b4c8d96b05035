package systemd

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen binds a real unixgram socket, as systemd does, and points
// NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	// Deadline only guards against a hung test; no timing is asserted.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifierSendsEachMessage(t *testing.T) {
	conn := listen(t)
	n := NewNotifier()
	for _, c := range []struct {
		send func() error
		want string
	}{
		{func() error { return n.Status("waiting for lockspace aosvg") }, "STATUS=waiting for lockspace aosvg"},
		{func() error { return n.Status("line one\nREADY=1") }, "STATUS=line one READY=1"},
		{n.Ready, "READY=1"},
		{n.Watchdog, "WATCHDOG=1"},
		{n.Stopping, "STOPPING=1"},
	} {
		if err := c.send(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, conn); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		t.Error("NOTIFY_SOCKET was unset; later watchdog pets would be lost")
	}
}

func TestNotifierNoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier()
	for _, f := range []func() error{n.Ready, n.Watchdog, n.Stopping, func() error { return n.Status("x") }} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	n := NewNotifier()
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	if _, ok := n.WatchdogInterval(); ok {
		t.Error("watchdog enabled without WATCHDOG_USEC")
	}
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	{
		d, ok := n.WatchdogInterval()
		if !ok {
			t.Error("got: ok = false, want true")
		}
		if d != 15*time.Second {
			t.Errorf("got: d = %v, want %v", d, 15*time.Second)
		}
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if _, ok := n.WatchdogInterval(); ok {
		t.Error("watchdog meant for another pid was accepted")
	}
}
