//go:build lab

package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// cinderServices is issue 14's lab tier: Debian's cinder-api,
// cinder-scheduler and cinder-volume on this machine drive the SharedLVM
// driver, whose agents are the story's production daemons on both guests
// (tests/cinder_services/test_lab.py: attach, live migration, a
// lease lost during an attach). The guests
// are nova's compute hosts: every step is checked there, through a bridge
// the Python side asks to run commands on a guest.
func (l *labT) cinderServices(t *testing.T, brokerURL string) {
	l.scenario(t, "cinder-services", func(t *testing.T) {
		work := t.TempDir()
		sock := filepath.Join(work, "bridge.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go l.serveBridge(ln)
		// Its lease-loss story needs the fence: the kill hook as `aos-agent
		// install` sets it, for the story's agents.
		defer l.hookStoryAgents(t)()
		if os.Getenv("LAB_LEASE_WATCH") != "" {
			wctx, stop := context.WithCancel(t.Context())
			defer stop()
			for h := 1; h <= 2; h++ {
				go watchLeases(wctx, l.c.Host(h), 2, filepath.Join(l.out, fmt.Sprintf("leases-cinder-services-h%d.txt", h)))
			}
		}

		repo, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/usr/bin/python3", "-W", "ignore", "-m", "unittest", "-v", "test_lab")
		cmd.Dir = filepath.Join(repo, "tests", "cinder_services")
		cmd.Env = append(os.Environ(), "AOS_TEST_AMQP_URL="+brokerURL, "AOS_LAB_BRIDGE="+sock,
			"AOS_TEST_WORK="+work, "PYTHONPATH="+repo)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		_ = os.WriteFile(filepath.Join(l.out, "cinder-services.log"), out, 0o644)
		l.tm.add("cinder services story (3 tests, services start included)", time.Since(start))
		l.addTimings(out)
		// Nothing the story started (cinder's services) may outlive it.
		if left, _ := exec.Command("pgrep", "-f", work+"/").Output(); len(left) > 0 {
			_ = exec.Command("pkill", "-KILL", "-f", work+"/").Run()
			t.Errorf("processes left behind by the story: %s", strings.Fields(string(left)))
		}
		if err != nil || !strings.Contains(string(out), "\nOK") {
			l.logStoryJournals(t, "60")
			t.Fatalf("cinder services on real hosts: %v\n%s", err, unittestSummary(out))
		}
		t.Logf("%s", unittestSummary(out))
	})
}

// addTimings adds the story's `timing: NAME SECONDS` lines to the table.
func (l *labT) addTimings(out []byte) {
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "timing: ")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if s, err := strconv.ParseFloat(rest[i+1:], 64); i > 0 && err == nil {
			l.tm.add(rest[:i], time.Duration(s*float64(time.Second)))
		}
	}
}

// unittestSummary keeps unittest's verdicts and failures, not cinder's
// service logs (the full output is in LAB_OUT/cinder-services.log).
func unittestSummary(out []byte) string {
	var keep []string
	inFailure := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "ERROR: ") || strings.HasPrefix(line, "FAIL: "):
			inFailure = true
		case strings.HasPrefix(line, "Ran "):
			inFailure = false
		}
		if inFailure || strings.Contains(line, " ... ") || strings.HasPrefix(line, "Ran ") ||
			line == "OK" || strings.HasPrefix(line, "FAILED") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// The bridge of tests/cinder_services/labcluster.py: one JSON request a
// connection, one JSON reply.
type bridgeRequest struct {
	Host    int      `json:"host"`
	Argv    []string `json:"argv"`
	Timeout float64  `json:"timeout"`
}

type bridgeReply struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Error    string `json:"error,omitempty"` // the request could not be carried out
}

func (l *labT) serveBridge(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			var req bridgeRequest
			reply := bridgeReply{}
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				reply.Error = err.Error()
			} else if err := l.bridge(req, &reply); err != nil {
				reply.Error = err.Error()
			}
			_ = json.NewEncoder(conn).Encode(reply)
		}()
	}
}

func (l *labT) bridge(req bridgeRequest, reply *bridgeReply) error {
	if req.Host < 1 || req.Host > l.c.Hosts() {
		return errors.New("no such guest")
	}
	if len(req.Argv) == 0 {
		return errors.New("empty argv")
	}
	res, err := l.c.Host(req.Host).Run(context.Background(), run.Cmd{Argv: req.Argv, Timeout: time.Duration(req.Timeout * float64(time.Second))})
	reply.ExitCode, reply.Stdout, reply.Stderr = res.ExitCode, string(res.Stdout), string(res.Stderr)
	var exit *run.Error
	if errors.As(err, &exit) && exit.ExitCode > 0 {
		return nil // the command's own failure, in the reply
	}
	return err
}
