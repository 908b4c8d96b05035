// Package api is the RPC method table cinder's SharedLVM driver calls:
// strict argument validation, then the volume service, then a JSON result or
// an error whose class becomes the remote exception name. See docs/rpc.md.
package api

import (
	"context"

	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/agent/volumes"
	"go.uber.org/zap"
)

// Version is the API version; requests may ask for 1.x with x ≤ 0.
const Version = "1.0"

// Options wire the API to the daemon.
type Options struct {
	Volumes *volumes.Service
	// Ping and Status build those replies (host facts live in the daemon).
	Ping   func(ctx context.Context) (any, error)
	Status func(ctx context.Context) (any, error)
	// Facts builds get_host_facts, the cluster view's per-host reply.
	Facts func(ctx context.Context) (any, error)
	// Broadcast sends a fanout cast to every agent (refresh after extend).
	Broadcast func(ctx context.Context, method string, args map[string]any) error
	Logger    *zap.Logger
}

type api struct {
	Options
}

// New returns the dispatcher for the RPC server. Counting, timing and
// logging each call is the RPC server's (aos_rpc_requests_total,
// aos_rpc_request_duration_seconds): one layer, so nothing is counted or
// logged twice.
func New(o Options) (rpc.Dispatcher, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	a := &api{Options: o}
	methods := map[string]rpc.Handler{
		"ping":              a.ping,
		"get_status":        a.getStatus,
		"get_host_facts":    a.getHostFacts,
		"activate_volume":   a.activateVolume,
		"deactivate_volume": a.deactivateVolume,
		"refresh_volume":    a.refreshVolume,
		"create_volume":     a.createVolume,
		"delete_volume":     a.deleteVolume,
		"extend_volume":     a.extendVolume,
		"list_volumes":      a.listVolumes,
		"create_snapshot":   a.createSnapshot,
		"delete_snapshot":   a.deleteSnapshot,
		"clone_volume":      a.cloneVolume,
	}
	// Every agent may publish to the fanout exchange (the refresh after a
	// shared extend; the cluster view's one call to every agent, which
	// only reads): nothing else may arrive that way.
	return rpc.Dispatcher{Version: Version, Methods: methods, Fanout: []string{"refresh_volume", "get_host_facts"}}, nil
}

func (a *api) ping(ctx context.Context, req *rpc.Request) (any, error) {
	if err := parseArgs(req.Method, req.Args); err != nil {
		return nil, err
	}
	return a.Ping(ctx)
}

func (a *api) getStatus(ctx context.Context, req *rpc.Request) (any, error) {
	if err := parseArgs(req.Method, req.Args); err != nil {
		return nil, err
	}
	return a.Status(ctx)
}

func (a *api) getHostFacts(ctx context.Context, req *rpc.Request) (any, error) {
	if err := parseArgs(req.Method, req.Args); err != nil {
		return nil, err
	}
	return a.Facts(ctx)
}

// ref parses the volume_name/volume_group pair every volume method takes,
// plus the method's own arguments.
func (a *api) ref(req *rpc.Request, extra ...arg) (volumes.Ref, error) {
	var name, vg string
	specs := append([]arg{{"volume_name", true, &name}, {"volume_group", false, &vg}}, extra...)
	if err := parseArgs(req.Method, req.Args, specs...); err != nil {
		return volumes.Ref{}, err
	}
	return a.Volumes.Resolve(vg, name)
}

func (a *api) activateVolume(ctx context.Context, req *rpc.Request) (any, error) {
	mode := string(volumes.Exclusive)
	r, err := a.ref(req, arg{"mode", false, &mode})
	if err != nil {
		return nil, err
	}
	return a.Volumes.Activate(ctx, r, volumes.RequestedMode(mode))
}

func (a *api) deactivateVolume(ctx context.Context, req *rpc.Request) (any, error) {
	r, err := a.ref(req)
	if err != nil {
		return nil, err
	}
	if err := a.Volumes.Deactivate(ctx, r); err != nil {
		return nil, err
	}
	return map[string]any{"volume_group": r.VG, "volume_name": r.LV, "active": false}, nil
}

func (a *api) refreshVolume(ctx context.Context, req *rpc.Request) (any, error) {
	r, err := a.ref(req)
	if err != nil {
		return nil, err
	}
	refreshed, err := a.Volumes.Refresh(ctx, r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"volume_group": r.VG, "volume_name": r.LV, "refreshed": refreshed}, nil
}

func (a *api) createVolume(ctx context.Context, req *rpc.Request) (any, error) {
	var size uint64
	r, err := a.ref(req, arg{"size", true, &size})
	if err != nil {
		return nil, err
	}
	return a.Volumes.Create(ctx, r, size)
}

func (a *api) deleteVolume(ctx context.Context, req *rpc.Request) (any, error) {
	clear := volumes.ClearNone
	var clearMB uint64
	r, err := a.ref(req, arg{"clear", false, &clear}, arg{"clear_size_mb", false, &clearMB})
	if err != nil {
		return nil, err
	}
	deleted, err := a.Volumes.Delete(ctx, r, clear, clearMB<<20)
	if err != nil {
		return nil, err
	}
	return map[string]any{"volume_group": r.VG, "volume_name": r.LV, "deleted": deleted}, nil
}

// extendVolume grows the LV; when it was extended under a shared lock, every
// agent is told to refresh it (sanlock VGs have no remote refresh). The
// extend itself has succeeded even if that broadcast fails: the reply says
// so, and the driver can call refresh_volume on the attached hosts itself.
func (a *api) extendVolume(ctx context.Context, req *rpc.Request) (any, error) {
	var size uint64
	r, err := a.ref(req, arg{"new_size", true, &size})
	if err != nil {
		return nil, err
	}
	ext, err := a.Volumes.Extend(ctx, r, size)
	if err != nil {
		return nil, err
	}
	reply := map[string]any{"volume_group": r.VG, "volume_name": r.LV, "size_bytes": ext.SizeBytes, "refresh_broadcast": false}
	if ext.RefreshOthers && a.Broadcast != nil {
		berr := a.Broadcast(ctx, "refresh_volume", map[string]any{"volume_name": r.LV, "volume_group": r.VG})
		if berr != nil {
			a.Logger.Error("refresh broadcast after extend failed", zap.String("vg", r.VG), zap.String("lv", r.LV), zap.Error(berr))
			reply["refresh_error"] = berr.Error()
		} else {
			reply["refresh_broadcast"] = true
		}
	}
	return reply, nil
}

func (a *api) listVolumes(ctx context.Context, req *rpc.Request) (any, error) {
	var vg string
	if err := parseArgs(req.Method, req.Args, arg{"volume_group", false, &vg}); err != nil {
		return nil, err
	}
	return a.Volumes.List(ctx, vg)
}

// snapshotRef parses snapshot_name/volume_group plus the method's own
// arguments.
func (a *api) snapshotRef(req *rpc.Request, extra ...arg) (volumes.Ref, error) {
	var name, vg string
	specs := append([]arg{{"snapshot_name", true, &name}, {"volume_group", false, &vg}}, extra...)
	if err := parseArgs(req.Method, req.Args, specs...); err != nil {
		return volumes.Ref{}, err
	}
	return a.Volumes.Resolve(vg, name)
}

func (a *api) createSnapshot(ctx context.Context, req *rpc.Request) (any, error) {
	var origin string
	var size uint64
	r, err := a.snapshotRef(req, arg{"volume_name", true, &origin}, arg{"size", true, &size})
	if err != nil {
		return nil, err
	}
	return a.Volumes.CreateSnapshot(ctx, r, origin, size)
}

func (a *api) deleteSnapshot(ctx context.Context, req *rpc.Request) (any, error) {
	r, err := a.snapshotRef(req)
	if err != nil {
		return nil, err
	}
	deleted, err := a.Volumes.DeleteSnapshot(ctx, r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"volume_group": r.VG, "snapshot_name": r.LV, "deleted": deleted}, nil
}

func (a *api) cloneVolume(ctx context.Context, req *rpc.Request) (any, error) {
	var source string
	var size uint64
	r, err := a.ref(req, arg{"source_name", true, &source}, arg{"size", false, &size})
	if err != nil {
		return nil, err
	}
	return a.Volumes.Clone(ctx, r, source, size)
}
