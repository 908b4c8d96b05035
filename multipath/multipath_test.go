package multipath

import (
	"context"
	"errors"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

func TestParseMapsJSONHealthy(t *testing.T) {
	maps, err := ParseMapsJSON(fixture.Read(t, "show-maps-json.healthy.source.json"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(maps) != 1 {
		t.Fatalf("len(maps) = %v, want 1", len(maps))
	}
	m := maps[0]
	if m.Name != "lun0" {
		t.Fatalf("m.Name = %q, want \"lun0\"", m.Name)
	}
	if m.WWID != "35000c50015ea71ac" {
		t.Fatalf("m.WWID = %q, want \"35000c50015ea71ac\"", m.WWID)
	}
	if m.Sysfs != "dm-0" {
		t.Fatalf("m.Sysfs = %q, want \"dm-0\"", m.Sysfs)
	}
	if m.DMState != "active" {
		t.Fatalf("m.DMState = %q, want \"active\"", m.DMState)
	}
	if m.Queueing != "off" {
		t.Fatalf("m.Queueing = %q, want \"off\"", m.Queueing)
	}
	if m.ActivePathCount != 2 {
		t.Fatalf("m.ActivePathCount = %v, want 2", m.ActivePathCount)
	}
	if len(m.Groups) != 2 {
		t.Fatalf("groups: len(m.Groups) = %v, want 2", len(m.Groups))
	}
	if m.Groups[1].Number != 2 {
		t.Fatalf("groups: m.Groups[1].Number = %v, want 2", m.Groups[1].Number)
	}
	if m.Groups[0].DMState != "active" {
		t.Fatalf("groups: m.Groups[0].DMState = %q, want \"active\"", m.Groups[0].DMState)
	}
	if m.Groups[0].Selector != "service-time 0" {
		t.Fatalf("groups: m.Groups[0].Selector = %q, want \"service-time 0\"", m.Groups[0].Selector)
	}
	{
		ps := m.ActivePaths()
		if len(ps) != 2 {
			t.Fatalf("active: len(ps) = %v, want 2", len(ps))
		}
		if ps[0].Dev != "sda" {
			t.Fatalf("active: ps[0].Dev = %q, want \"sda\"", ps[0].Dev)
		}
		if ps[1].DevT != "8:16" {
			t.Fatalf("active: ps[1].DevT = %q, want \"8:16\"", ps[1].DevT)
		}
		if ps[0].Checker != "tur" {
			t.Fatalf("active: ps[0].Checker = %q, want \"tur\"", ps[0].Checker)
		}
		if ps[0].DevState != "running" {
			t.Fatalf("active: ps[0].DevState = %q, want \"running\"", ps[0].DevState)
		}
	}
	if len(m.FailedPaths()) != 0 {
		t.Fatal("no failed paths expected")
	}
}

func TestParseMapsJSONFailed(t *testing.T) {
	maps, err := ParseMapsJSON(fixture.Read(t, "show-maps-json.failed.source.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := maps[0]
	if len(m.ActivePaths()) != 0 {
		t.Fatalf("len(m.ActivePaths()) = %v, want 0", len(m.ActivePaths()))
	}
	if len(m.FailedPaths()) != 2 {
		t.Fatalf("len(m.FailedPaths()) = %v, want 2", len(m.FailedPaths()))
	}
	if m.Queueing != "on" {
		t.Fatalf("m.Queueing = %q, want \"on\"", m.Queueing)
	}
	if m.Features != "1 queue_if_no_path" {
		t.Fatalf("m.Features = %q, want \"1 queue_if_no_path\"", m.Features)
	}
	if m.PathFaults != 2 {
		t.Fatalf("m.PathFaults = %v, want 2", m.PathFaults)
	}
	{
		p := m.FailedPaths()[0]
		if p.DMState != "failed" {
			t.Fatalf("p.DMState = %q, want \"failed\"", p.DMState)
		}
		if p.CheckerState != "faulty" {
			t.Fatalf("p.CheckerState = %q, want \"faulty\"", p.CheckerState)
		}
		if p.DevState != "offline" {
			t.Fatalf("p.DevState = %q, want \"offline\"", p.DevState)
		}
	}
	empty, err := ParseMapsJSON(fixture.Read(t, "show-maps-json.empty.source.json"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(empty) != 0 {
		t.Fatalf("len(empty) = %v, want 0", len(empty))
	}
	if _, err := ParseMapsJSON([]byte("fail\n")); err == nil {
		t.Fatal("non-JSON must fail")
	}
}

func TestPathActive(t *testing.T) {
	for _, c := range []struct {
		p    Path
		want bool
	}{
		{Path{DMState: "active", CheckerState: "ready"}, true},
		{Path{DMState: "active", CheckerState: "ghost"}, true},
		{Path{DMState: "active", CheckerState: "i/o pending"}, false},
		{Path{DMState: "failed", CheckerState: "ready"}, false},
		{Path{DMState: "undef", CheckerState: "undef"}, false},
	} {
		if c.p.Active() != c.want {
			t.Errorf("%+v: %v", c.p, !c.want)
		}
	}
}

func TestParseMapJSON(t *testing.T) {
	m, err := ParseMapJSON(fixture.Read(t, "show-map-json.lun0.source.json"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if m.Name != "lun0" {
		t.Fatalf("m.Name = %q, want \"lun0\"", m.Name)
	}
	if len(m.Paths()) != 2 {
		t.Fatalf("len(m.Paths()) = %v, want 2", len(m.Paths()))
	}
	if _, err := ParseMapJSON([]byte(`{"major_version": 0}`)); err == nil {
		t.Fatal("missing map must fail")
	}
	if _, err := ParseMapJSON([]byte(`{`)); err == nil {
		t.Fatal("bad JSON must fail")
	}
}

func TestParsePaths(t *testing.T) {
	ps, err := ParsePaths(fixture.Read(t, "show-paths-raw.source.txt"))
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(ps) != 3 {
		t.Fatalf("len(ps) = %v, want 3", len(ps))
	}
	{
		p := ps[0]
		if p.Dev != "sda" {
			t.Fatalf("p.Dev = %q, want \"sda\"", p.Dev)
		}
		if p.DevT != "8:0" {
			t.Fatalf("p.DevT = %q, want \"8:0\"", p.DevT)
		}
		if !p.Active() {
			t.Fatal("p.Active() = false, want true")
		}
		if p.Map != "lun0" {
			t.Fatalf("p.Map = %q, want \"lun0\"", p.Map)
		}
		if p.WWID != "35000c50015ea71ac" {
			t.Fatalf("p.WWID = %q, want \"35000c50015ea71ac\"", p.WWID)
		}
		if p.HCIL != "2:0:0:0" {
			t.Fatalf("p.HCIL = %q, want \"2:0:0:0\"", p.HCIL)
		}
	}
	{
		p := ps[1]
		if p.CheckerState != "i/o pending" {
			t.Fatalf("p.CheckerState = %q, want \"i/o pending\"", p.CheckerState)
		}
		if p.Active() {
			t.Fatal("p.Active() = true, want false")
		}
	}
	if ps[2].Map != "[orphan]" {
		t.Fatalf("%+v", ps[2])
	}
	if _, err := ParsePaths([]byte("sda|8:0|active\n")); err == nil {
		t.Fatal("short line must fail")
	}
}

func TestClientArgv(t *testing.T) {
	ctx := context.Background()
	s := run.NewScripted(t,
		run.Step{Argv: []string{"multipathd", "show", "maps", "json"}, Stdout: string(fixture.Read(t, "show-maps-json.healthy.source.json"))},
		run.Step{Argv: []string{"multipathd", "show", "map", "lun0", "json"}, Stdout: string(fixture.Read(t, "show-map-json.lun0.source.json"))},
		run.Step{Argv: []string{"multipathd", "show", "map", "nope", "json"}, Stdout: "fail\n", ExitCode: 1},
		run.Step{Argv: []string{"multipathd", "show", "paths", "raw", "format", "%d|%D|%t|%T|%o|%m|%w|%i"}, Stdout: string(fixture.Read(t, "show-paths-raw.source.txt"))},
		run.Step{Argv: []string{"multipathd", "disablequeueing", "map", "lun0"}, Stdout: "ok\n"},
		run.Step{Argv: []string{"multipathd", "restorequeueing", "map", "lun0"}, Stdout: "ok\n"},
		run.Step{Argv: []string{"multipathd", "disablequeueing", "maps"}, Stdout: "ok\n"},
		run.Step{Argv: []string{"multipathd", "restorequeueing", "maps"}, Stdout: "ok\n"},
		run.Step{Argv: []string{"dmsetup", "message", "lun0", "0", "fail_if_no_path"}},
		run.Step{Argv: []string{"multipathd", "show", "maps", "json"}, ExitCode: 1},
		run.Step{Argv: []string{"multipathd", "disablequeueing", "map", "lun0"}, Stdout: "timeout receiving packet\n", ExitCode: 1},
		run.Step{Argv: []string{"multipathd", "restorequeueing", "map", "lun0"}, Stdout: "fail\n", ExitCode: 1},
		run.Step{Argv: []string{"multipathd", "show", "paths", "raw", "format", "%d|%D|%t|%T|%o|%m|%w|%i"}, Err: &run.Error{Argv: []string{"multipathd"}, ExitCode: -1, TimedOut: true, Err: context.DeadlineExceeded}},
		run.Step{Argv: []string{"multipathd", "show", "map", "lun0", "json"}, ExitCode: 1, Stderr: "something"},
		run.Step{Argv: []string{"multipathd", "show", "maps", "json"}, Stdout: "garbage"},
		run.Step{Argv: []string{"multipathd", "show", "map", "lun0", "json"}, Stdout: "{}"},
	)
	c := New(s, time.Second)
	{
		maps, err := c.Maps(ctx)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if len(maps) != 1 {
			t.Fatalf("len(maps) = %v, want 1", len(maps))
		}
	}
	{
		m, err := c.Map(ctx, "lun0")
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if m.WWID != "35000c50015ea71ac" {
			t.Fatalf("m.WWID = %q, want \"35000c50015ea71ac\"", m.WWID)
		}
	}
	if _, err := c.Map(ctx, "nope"); !errors.Is(err, ErrMapNotFound) {
		t.Fatalf("missing map: %v", err)
	}
	{
		ps, err := c.Paths(ctx)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if len(ps) != 3 {
			t.Fatalf("len(ps) = %v, want 3", len(ps))
		}
	}
	if err := c.DisableQueueing(ctx, "lun0"); err != nil {
		t.Fatal(err)
	}
	if err := c.RestoreQueueing(ctx, "lun0"); err != nil {
		t.Fatal(err)
	}
	if err := c.DisableQueueing(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.RestoreQueueing(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.FailIfNoPath(ctx, "lun0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Maps(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("daemon down: %v", err)
	}
	if err := c.DisableQueueing(ctx, "lun0"); !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("daemon timeout: %v", err)
	}
	{
		err := c.RestoreQueueing(ctx, "lun0")
		if err == nil {
			t.Fatal("fail answer: err = nil, want non-nil")
		}
		if errors.Is(err, ErrNotRunning) {
			t.Fatalf("fail answer: err = %v, want anything but ErrNotRunning", err)
		}
	}
	if _, err := c.Paths(ctx); !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("runner timeout: %v", err)
	}
	{
		_, err := c.Map(ctx, "lun0")
		if err == nil {
			t.Fatal("other failure: err = nil, want non-nil")
		}
		if errors.Is(err, ErrMapNotFound) {
			t.Fatalf("other failure: err = %v, want anything but ErrMapNotFound", err)
		}
		if errors.Is(err, ErrNotRunning) {
			t.Fatalf("other failure: err = %v, want anything but ErrNotRunning", err)
		}
	}
	if _, err := c.Maps(ctx); err == nil {
		t.Fatal("garbage must fail")
	}
	if _, err := c.Map(ctx, "lun0"); err == nil {
		t.Fatal("empty object must fail")
	}
	for _, bad := range []string{"", "-x", "a b", `a"b`, "a{", strings.Repeat("x", 129)} {
		if _, err := c.Map(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("map %q: %v", bad, err)
		}
		if err := c.FailIfNoPath(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("fail_if_no_path %q: %v", bad, err)
		}
	}
}

func TestRenderAliasSnippet(t *testing.T) {
	got, err := RenderAliasSnippet("35000c50015ea71ac", "sanlock")
	if err != nil {
		t.Fatal(err)
	}
	want := "multipaths {\n\tmultipath {\n\t\twwid 35000c50015ea71ac\n\t\talias sanlock\n\t}\n}\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	for _, c := range [][2]string{{"", "a"}, {"w", ""}, {"w w", "a"}, {"w", "a}"}, {"w", "a/b"}, {"w", "#a"}} {
		if _, err := RenderAliasSnippet(c[0], c[1]); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", c, err)
		}
	}
}

func FuzzParseMapsJSON(f *testing.F) {
	for _, n := range []string{"show-maps-json.healthy.source.json", "show-maps-json.failed.source.json", "show-maps-json.empty.source.json", "show-map-json.lun0.source.json"} {
		f.Add(fixture.Read(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if maps, err := ParseMapsJSON(b); err == nil {
			for i := range maps {
				maps[i].ActivePaths()
				maps[i].FailedPaths()
			}
		}
		if m, err := ParseMapJSON(b); err == nil {
			m.ActivePaths()
		}
	})
}

func FuzzParsePaths(f *testing.F) {
	f.Add(fixture.Read(f, "show-paths-raw.source.txt"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParsePaths(b)
		if err == nil {
			for _, p := range ps {
				_ = p.Active() // must not panic on any parsed path
			}
		}
	})
}

func FuzzRenderAliasSnippet(f *testing.F) {
	f.Add("35000c50015ea71ac", "sanlock")
	f.Fuzz(func(t *testing.T, wwid, alias string) {
		s, err := RenderAliasSnippet(wwid, alias)
		if err == nil && strings.Count(s, "{") != 2 {
			t.Fatalf("snippet structure broken by input: %q", s)
		}
	})
}
