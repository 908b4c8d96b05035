package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

type harness struct {
	disp       rpc.Dispatcher
	broadcasts []string
}

func newHarness(t *testing.T, steps ...run.Step) *harness {
	t.Helper()
	r := run.NewScripted(t, steps...)
	held, err := state.OpenHeld(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := volumes.New(lvm.New(r, lvm.Options{VolumeGroups: []string{"vol"}}), sanlock.NewLockCtl(r, time.Second),
		volumes.CommandWiper{Runner: r}, held, volumes.Options{VolumeGroups: []string{"vol"}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{}
	h.disp, err = New(Options{
		Volumes: svc,
		Ping:    func(context.Context) (any, error) { return map[string]any{"host": "c1"}, nil },
		Status:  func(context.Context) (any, error) { return map[string]any{"ready": true}, nil },
		Broadcast: func(_ context.Context, method string, args map[string]any) error {
			h.broadcasts = append(h.broadcasts, method+" "+args["volume_name"].(string))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) call(t *testing.T, method, args string) (any, error) {
	t.Helper()
	var a map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		t.Fatal(err)
	}
	return h.disp.Methods[method](context.Background(), &rpc.Request{Method: method, Args: a})
}

func TestArgumentValidationBeforeAnyCommand(t *testing.T) {
	h := newHarness(t) // no steps: any command fails the test
	for _, c := range []struct{ method, args, want string }{
		{"activate_volume", `{}`, "missing required argument volume_name"},
		{"activate_volume", `{"volume_name": 7}`, "volume_name must be a string"},
		{"activate_volume", `{"volume_name": null}`, "must not be null"},
		{"activate_volume", `{"volume_name": "v1", "mode": "rw"}`, "mode must be"},
		{"activate_volume", `{"volume_name": "v1", "force": true}`, "unknown argument(s) force"},
		{"activate_volume", `{"volume_name": "v1", "volume_group": "other"}`, "not managed by this agent"},
		{"activate_volume", `{"volume_name": "../etc/passwd"}`, ""},
		{"create_volume", `{"volume_name": "v1", "size": -1}`, "size must be a non-negative integer"},
		{"create_volume", `{"volume_name": "v1", "size": 1.5}`, "size must be a non-negative integer"},
		{"create_volume", `{"volume_name": "v1"}`, "missing required argument size"},
		{"delete_volume", `{"volume_name": "v1", "clear": "fast"}`, "clear must be"},
		{"extend_volume", `{"volume_name": "v1", "new_size": "big"}`, "new_size must be"},
		{"ping", `{"x": 1}`, "unknown argument(s) x"},
		{"list_volumes", `{"volume_group": 3}`, "volume_group must be a string"},
	} {
		_, err := h.call(t, c.method, c.args)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("%s %s: err = %v, want errdefs.ErrInvalidArgument", c.method, c.args, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err.Error() = %q, want it to contain %q", c.method, c.args, err.Error(), c.want)
		}
	}
}

const lvsVolume2 = "lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_lockargs,origin,lv_active_locally,lv_active_exclusively,lv_active_remotely,lv_device_open,lv_tags vol/volume-2"

func TestMethods(t *testing.T) {
	h := newHarness(t,
		run.Step{Argv: strings.Fields("lvchange -aey vol/volume-1")},
		run.Step{Argv: strings.Fields(lvsVolume2), Stdout: `{"report":[{"lv":[{"lv_name":"volume-2","vg_name":"vol","lv_uuid":"U2","lv_size":"1073741824","lv_attr":"-wi-------","lv_lockargs":"1.0.0:1","origin":"","lv_active_locally":"","lv_active_exclusively":"","lv_active_remotely":"","lv_device_open":""}]}]}`},
		run.Step{Argv: strings.Fields("lvchange -asy vol/volume-2")},
		run.Step{Argv: strings.Fields(lvsVolume2),
			Stdout: `{"report":[{"lv":[{"lv_name":"volume-2","vg_name":"vol","lv_uuid":"U2","lv_size":"1073741824","lv_attr":"-wi-a-----","lv_lockargs":"1.0.0:1","origin":"","lv_active_locally":"active locally","lv_active_exclusively":"active exclusively","lv_active_remotely":"","lv_device_open":""}]}]}`},
		run.Step{Argv: strings.Fields("lvextend -L 2147483648b --lockopt shupdate,norefresh vol/volume-2")},
		run.Step{Argv: strings.Fields(lvsVolume2), Stdout: `{"report":[{"lv":[{"lv_name":"volume-2","vg_name":"vol","lv_uuid":"U2","lv_size":"2147483648","lv_attr":"-wi-a-----","lv_lockargs":"1.0.0:1","origin":"","lv_active_locally":"active locally","lv_active_exclusively":"active exclusively","lv_active_remotely":"","lv_device_open":""}]}]}`},
		run.Step{Argv: strings.Fields("lvmlockctl --info --dump"), Stdout: "info=ls ls_name=lvm_vol vg_name=vol kill_vg=0 drop_vg=0\n"},
		run.Step{Argv: strings.Fields("lvmlockctl --info"), Stdout: "VG vol lock_type=sanlock X\nLS sanlock lvm_vol\nLK LV sh U2\n"},
		run.Step{Argv: strings.Fields("lvchange --refresh vol/volume-2")},
		run.Step{Argv: strings.Fields("lvchange -an vol/volume-1"), ExitCode: 5, Stderr: "  Logical volume vol/volume-1 in use.\n"},
	)
	res, err := h.call(t, "activate_volume", `{"volume_name": "volume-1"}`)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if res.(volumes.Activation).DevicePath != "/dev/vol/volume-1" {
		t.Fatalf("res.(volumes.Activation).DevicePath = %q, want \"/dev/vol/volume-1\"", res.(volumes.Activation).DevicePath)
	}
	if res.(volumes.Activation).Mode != volumes.Exclusive {
		t.Fatalf("res.(volumes.Activation).Mode = %v, want %v", res.(volumes.Activation).Mode, volumes.Exclusive)
	}
	if _, err := h.call(t, "activate_volume", `{"volume_name": "volume-2", "mode": "shared", "volume_group": "vol"}`); err != nil {
		t.Fatal(err)
	}
	res, err = h.call(t, "extend_volume", `{"volume_name": "volume-2", "new_size": 2}`)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if res.(map[string]any)["refresh_broadcast"] != true {
		t.Fatalf("res.(map[string]any)[\"refresh_broadcast\"] = %v, want true", res.(map[string]any)["refresh_broadcast"])
	}
	if len(h.broadcasts) != 1 {
		t.Fatalf("broadcasts: len(h.broadcasts) = %v, want 1", len(h.broadcasts))
	}
	if h.broadcasts[0] != "refresh_volume volume-2" {
		t.Fatalf("broadcasts: h.broadcasts[0] = %q, want \"refresh_volume volume-2\"", h.broadcasts[0])
	}
	{
		res, err := h.call(t, "refresh_volume", `{"volume_name": "volume-2"}`)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if res.(map[string]any)["refreshed"] != true {
			t.Fatalf("res.(map[string]any)[\"refreshed\"] = %v, want true", res.(map[string]any)["refreshed"])
		}
	}
	_, err = h.call(t, "deactivate_volume", `{"volume_name": "volume-1"}`)
	if !errors.Is(err, errdefs.ErrVolumeInUse) {
		t.Fatal(err)
	}
	{
		res, err := h.call(t, "ping", `{}`)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if res.(map[string]any)["host"] != "c1" {
			t.Fatalf("res.(map[string]any)[\"host\"] = %q, want \"c1\"", res.(map[string]any)["host"])
		}
	}
	if _, err := h.call(t, "get_status", `{}`); err != nil {
		t.Fatal(err)
	}
}

// Python callers pass None for an optional argument they leave at its
// default: null there means the default (mode exclusive, the first VG),
// while null for a required argument is InvalidArgument (above).
func TestNullOptionalArgumentMeansDefault(t *testing.T) {
	h := newHarness(t, run.Step{Argv: strings.Fields("lvchange -aey vol/v1")})
	res, err := h.call(t, "activate_volume", `{"volume_name": "v1", "mode": null, "volume_group": null}`)
	if err != nil {
		t.Fatal(err)
	}
	{
		a := res.(volumes.Activation)
		if a.Mode != volumes.Exclusive {
			t.Fatalf("activation: a.Mode = %v, want %v", a.Mode, volumes.Exclusive)
		}
		if a.VG != "vol" {
			t.Fatalf("activation: a.VG = %q, want \"vol\"", a.VG)
		}
	}
}
