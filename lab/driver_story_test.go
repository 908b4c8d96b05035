//go:build lab

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/hostcfg"
)

// driverStory is issue 4's driver story on real hosts: the agent runs on
// both guests (the production daemon, as a systemd notify service) and
// Debian's oslo.messaging RPCClient on this host tells the SharedLVM
// driver's story to them through the broker: create, exclusive attach, the
// refused second attach, multi-attach, migration hand-off, extend and
// refresh, refused delete, detach, zero-clear delete, bad input. The agents
// keep running for clusterView, which stops them.
func (l *labT) driverStory(t *testing.T, brokerURL string) {
	l.scenario(t, "driver-story", func(t *testing.T) {
		for h := 1; h <= 2; h++ {
			host := fmt.Sprintf("lab-h%d", h)
			l.must(t, h, "", "mkdir", "-p", "/etc/aos-agent-story", "/etc/systemd/network")
			for path, content := range map[string]string{
				"/etc/aos-agent-story/aos-agent.conf": agentConf(brokerURL, host, "/var/lib/aos-agent-story"),
				"/etc/systemd/network/10-lab.network": guestNetwork,
			} {
				if err := WriteFile(t.Context(), l.c.Host(h), path, content); err != nil {
					t.Fatal(err)
				}
			}
			l.must(t, h, "", "systemctl", "restart", "systemd-networkd.service")
			// systemd-run returns once the notify service is READY.
			l.must(t, h, "agent start to READY", "systemd-run", "--unit", "aos-agent-story", "-p", "Type=notify",
				guestAgent, "run", "--config", "/etc/aos-agent-story/aos-agent.conf")
		}
		start := time.Now()
		cmd := exec.Command("/usr/bin/python3", "-W", "ignore::ResourceWarning", "../tests/contract/test_driver_story.py")
		cmd.Env = append(os.Environ(), "AOS_TEST_AMQP_URL="+brokerURL,
			"AOS_STORY_HOSTS=compute-a=lab-h1,compute-b=lab-h2,cinder-1=lab-h1")
		out, err := cmd.CombinedOutput()
		_ = os.WriteFile(filepath.Join(l.out, "driver-story.log"), out, 0o644)
		l.tm.add("driver story (oslo RPCClient -> agents on both guests)", time.Since(start))
		if err != nil || !strings.Contains(string(out), "\nOK") {
			l.logStoryJournals(t, "all")
			t.Fatalf("driver story on real hosts: %v\n%s", err, out)
		}
		t.Logf("%s", out)
	})
}

// logStoryJournals logs the story agents' journals on both guests (lines:
// journalctl's -n, "all" for everything), for a story that failed.
func (l *labT) logStoryJournals(t *testing.T, lines string) {
	t.Helper()
	for h := 1; h <= 2; h++ {
		res, _ := l.cmd(h, "journalctl", "-u", "aos-agent-story", "--no-pager", "-o", "cat", "-n", lines)
		t.Logf("h%d agent journal (-n %s):\n%s", h, lines, res.Stdout)
	}
}

// hookStoryAgents sets the kill hook on both guests, as `aos-agent install`
// does, for the story's agents (their config and state dir), and returns
// what puts Debian's lvm.conf back.
func (l *labT) hookStoryAgents(t *testing.T) (restore func()) {
	t.Helper()
	var undo []func()
	for h := 1; h <= 2; h++ {
		lvmConf := l.must(t, h, "", "cat", guestLVMConf).Stdout
		hooked, err := hostcfg.SetLVM(lvmConf, hostcfg.Setting{Section: "global", Key: "lvmlockctl_kill_command",
			Value: hostcfg.Quote(guestAgent + " kill-hook --config /etc/aos-agent-story/aos-agent.conf")})
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(t.Context(), l.c.Host(h), guestLVMConf, string(hooked)); err != nil {
			t.Fatal(err)
		}
		undo = append(undo, func() { _ = WriteFile(context.Background(), l.c.Host(h), guestLVMConf, string(lvmConf)) })
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}
}
