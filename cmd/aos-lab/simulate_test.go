package main

import (
	"errors"
	"strings"
	"testing"
)

type switchLog struct{ calls []string }

func (s *switchLog) StopAgent(host string) error {
	s.calls = append(s.calls, "stop "+host)
	if host == "nope" {
		return errors.New(`no agent runs on "nope"`)
	}
	return nil
}

func (s *switchLog) StartAgent(host string) error {
	s.calls = append(s.calls, "start "+host)
	return nil
}

func (s *switchLog) Fault(host, fault string) error {
	s.calls = append(s.calls, "fault "+host+" "+fault)
	return nil
}

func TestSimulateControl(t *testing.T) {
	var out strings.Builder
	sw := &switchLog{}
	control(strings.NewReader("stop compute-b\nstart compute-b\nstop nope\nrestart x\nfault compute-a paths-down\n"), &out, sw)
	want := "OK\nOK\nERR no agent runs on \"nope\"\nERR unknown command \"restart\" (stop HOST, start HOST, fault HOST FAULT)\nOK\n"
	if out.String() != want {
		t.Fatalf("replies %q, want %q", out.String(), want)
	}
	if got := strings.Join(sw.calls, ","); got != "stop compute-b,start compute-b,stop nope,fault compute-a paths-down" {
		t.Fatalf("calls %s", got)
	}
}
