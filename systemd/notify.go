// Package systemd tells systemd about the agent's life cycle (sd_notify):
// READY=1 once lockspaces are started and the RPC consumer is up, STATUS= as
// state changes, WATCHDOG=1 from the health loop, STOPPING=1 on shutdown.
// Every call is a no-op when the agent was not started by systemd
// (NOTIFY_SOCKET unset), so the daemon calls them unconditionally.
package systemd

import (
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify messages to the socket named by NOTIFY_SOCKET.
type Notifier struct{}

// NewNotifier returns a Notifier for the current process.
func NewNotifier() *Notifier { return &Notifier{} }

// Ready reports that lockspaces are started and dependents may start.
func (n *Notifier) Ready() error { return n.send(daemon.SdNotifyReady) }

// Status sets the one-line status `systemctl status` shows.
func (n *Notifier) Status(s string) error {
	// A newline would end the STATUS= assignment and start a new one.
	return n.send("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}

// Stopping reports a clean shutdown has begun.
func (n *Notifier) Stopping() error { return n.send(daemon.SdNotifyStopping) }

// Watchdog pets the service watchdog. It guards the agent's own loop, not
// the host: the agent pets after every completed poll whatever the poll
// found, so a wedged agent is restarted while a lost lockspace or broker
// (which a restart would not fix) is reported in STATUS instead.
func (n *Notifier) Watchdog() error { return n.send(daemon.SdNotifyWatchdog) }

// WatchdogInterval is how often Watchdog should be called (half of
// WatchdogSec, as sd_watchdog_enabled(3) advises), and false when the unit
// has no watchdog or it is meant for another process.
func (n *Notifier) WatchdogInterval() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d == 0 {
		return 0, false
	}
	return d / 2, true
}

func (n *Notifier) send(state string) error {
	// unsetEnvironment=false: the health loop sends WATCHDOG=1 for the whole
	// life of the process, so NOTIFY_SOCKET must stay set.
	_, err := daemon.SdNotify(false, state)
	return err
}
