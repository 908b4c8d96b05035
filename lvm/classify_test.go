package lvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// classifyCase is one stderr string with its origin: "lab/<file>" means it
// was recorded on a real lvm2 2.03.16 host and every line must occur in that
// copied log; anything else cites the lvm2 source that prints it.
type classifyCase struct {
	name   string
	source string
	stderr string
	exit   int
	class  *errdefs.Class
}

var classifyCases = []classifyCase{
	// Recorded on real hosts.
	{"lockspace stopped", "lab/run-04-smp1.04-misc.sh.h1.log",
		"  Cannot access VG vol due to failed lock.\n", 5, errdefs.ErrLockspaceNotStarted},
	{"lock start in progress", "lab/run-04-smp1.04-misc.sh.h1.log",
		"  VG vol lock skipped: lock start in progress\n  Cannot access VG vol due to failed lock.\n", 5, errdefs.ErrLockStartInProgress},
	{"VG killed, ex lock", "lab/run-04-smp1.04-misc.sh.h1.log",
		"  VG vol lock skipped: storage failed for sanlock leases\n  Cannot access VG vol due to failed lock.\n", 5, errdefs.ErrLockspaceLost},
	{"VG killed, looks not found", "lab/run-a.02-fault.sh.h1.log",
		"  VG vol lock skipped: storage failed for sanlock leases\n  Volume group \"vol\" not found\n  Cannot process volume group vol\n", 5, errdefs.ErrLockspaceLost},
	{"lock-start on killed VG", "lab/run-a.02-fault.sh.h1.log",
		"  Skipping global lock: storage failed for sanlock leases\n  Volume group \"vol\" not found\n  Cannot process volume group vol\n", 5, errdefs.ErrLockspaceLost},
	{"VG not found", "lab/run-a.02-fault.sh.h1.log",
		"  Volume group \"vol\" not found\n  Cannot process volume group vol\n", 5, errdefs.ErrVolumeGroupNotFound},
	{"LV locked by other host 2.03.16", "lab/run-twohost.03-twohost.sh.h2.log",
		"  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n", 5, errdefs.ErrLockConflict},
	{"lock-stop with active LVs", "lab/01-basic.sh.h1.log",
		"  VG vol stop failed: LVs must first be deactivated\n", 5, errdefs.ErrVolumeInUse},
	// Recorded from -aln, which still exits 0 there; for -aey the same
	// lockd_lv failure makes lvchange exit ECMD_FAILED.
	{"LV lock, lockspace inactive", "lab/run-b.02-fault.sh.h1.log",
		"  LV vol/lv1 lock failed: lockspace is inactive\n  Failed to unlock logical volume vol/lv1.\n", 5, errdefs.ErrLockspaceNotStarted},
	// lvmlockd ELMERR; the text is generic, so the class is unknown.
	{"lock manager error -221", "lab/lab-batch-conflict2.stderr",
		"  LV vol/lv50 lock failed: error -221\n  Failed to lock logical volume vol/lv50.\n", 5, errdefs.ErrUnknown},

	// Not recorded: strings from lvm2 source.
	{"LV locked by other host with host_id", "lvm2 v2_03_33+ lib/locking/lvmlockd.c lockd_lv, _owner_str",
		"  LV locked by other host: vol/lv1 (host_id 2)\n  Failed to lock logical volume vol/lv1.\n", 5, errdefs.ErrLockConflict},
	{"incompatible mode", "lvm2 v2_03_16 lib/locking/lvmlockd.c:2480",
		"  LV is already locked with incompatible mode: vol/lv1\n", 5, errdefs.ErrIncompatibleLockMode},
	{"VG lock held 2.03.16", "lvm2 v2_03_16 lib/locking/lvmlockd.c:2210",
		"  VG vol lock failed: held by other host.\n", 5, errdefs.ErrLockConflict},
	{"VG lock held newer", "lvm2 v2_03_39 lib/locking/lvmlockd.c:2730",
		"  VG vol lock failed: held by other host (host_id 3)\n", 5, errdefs.ErrLockConflict},
	{"global lock held", "lvm2 v2_03_16 lib/locking/lvmlockd.c:1959",
		"  Global lock failed: held by other host.\n", 5, errdefs.ErrLockConflict},
	{"VG ex lock while starting", "lvm2 v2_03_16 lib/locking/lvmlockd.c:2170",
		"  VG vol lock failed: lock start in progress\n  Cannot access VG vol due to failed lock.\n", 5, errdefs.ErrLockStartInProgress},
	{"global lock while starting", "lvm2 v2_03_16 lib/locking/lvmlockd.c:1689",
		"  Global lock failed: lockspace is starting.\n", 5, errdefs.ErrLockStartInProgress},
	{"LV lock I/O errors", "lvm2 v2_03_16 lib/locking/lvmlockd.c:2500",
		"  LV vol/lv1 lock failed: storage errors for sanlock leases\n  Failed to lock logical volume vol/lv1.\n", 5, errdefs.ErrLockspaceLost},
	{"LV lock io timeout", "lvm2 v2_03_39 lib/locking/lvmlockd.c:3150",
		"  LV vol/lv1 lock failed: io timeout.\n", 5, errdefs.ErrLockspaceLost},
	{"lease needs repair", "lvm2 v2_03_39 lib/locking/lvmlockd.c:1763",
		"  VG vol start failed: sanlock lease needs repair\n", 5, errdefs.ErrLockspaceLost},
	{"VG killed by number", "lvm2 lib/locking/lvmlockd.c 'error %d' with EVGKILLED (lvmlockd-client.h)",
		"  LV vol/lv1 lock failed: error -217\n", 5, errdefs.ErrLockspaceLost},
	{"sanlock not running", "lvm2 v2_03_16 lib/locking/lvmlockd.c:1407",
		"  VG vol start failed: lock manager sanlock is not running\n", 5, errdefs.ErrLockManagerDown},
	{"lvmlockd not running at start", "lvm2 v2_03_16 lib/locking/lvmlockd.c:1316",
		"  VG vol start failed: lvmlockd is not running\n", 5, errdefs.ErrLockManagerDown},
	{"lvmlockd not running", "lvm2 v2_03_16 lib/locking/lvmlockd.c:72 + lib/metadata/metadata.c:3856",
		"  WARNING: lvmlockd process is not running.\n  Cannot access VG vol due to failed lock.\n", 5, errdefs.ErrLockManagerDown},
	{"no lvmlockd reply for LV", "lvm2 v2_03_16 lib/locking/lvmlockd.c:2448",
		"  Locking failed for LV vol/lv1\n", 5, errdefs.ErrLockManagerDown},
	{"global lockspace not started", "lvm2 v2_03_16 lib/locking/lvmlockd.c:1904 (ENOLS; seen in the field as error -210)",
		"  Global lock failed: error -210\n", 5, errdefs.ErrLockspaceNotStarted},
	{"LV exists", "lvm2 v2_03_16 lib/metadata/lv_manip.c:8176",
		"  Logical Volume \"lv1\" already exists in volume group \"vol\"\n", 5, errdefs.ErrVolumeExists},
	{"VG space for lvcreate", "lvm2 v2_03_16 lib/metadata/lv_manip.c:8443",
		"  Volume group \"vol\" has insufficient free space (399 extents): 500 required.\n", 5, errdefs.ErrInsufficientSpace},
	{"space for lvextend", "lvm2 v2_03_16 lib/metadata/lv_manip.c:1969",
		"  Insufficient free space: 500 extents needed, but only 399 available\n", 5, errdefs.ErrInsufficientSpace},
	{"no lease slot", "lvm2 v2_03_16 tools/lvcreate.c:1748",
		"  No space for sanlock lock, extend the internal lvmlock LV.\n", 5, errdefs.ErrInsufficientSpace},
	{"LV open", "lvm2 v2_03_16 lib/activate/activate.c:898",
		"  Logical volume vol/lv1 in use.\n", 5, errdefs.ErrVolumeInUse},
	{"LV holder", "lvm2 v2_03_16 lib/activate/activate.c:864",
		"  Logical volume vol/lv1 is used by another device.\n", 5, errdefs.ErrVolumeInUse},
	{"LV not found", "lvm2 v2_03_16 tools/toollib.c:3488",
		"  Failed to find logical volume \"vol/lv9\"\n", 5, errdefs.ErrVolumeNotFound},
	{"LV not found by lvresize", "lvm2 v2_03_16 tools/lvresize.c:175",
		"  Logical volume lv9 not found in volume group vol.\n", 5, errdefs.ErrVolumeNotFound},
	{"shrink by lvextend", "lvm2 v2_03_16 lib/metadata/lv_manip.c:5759",
		"  New size given (16 extents) not larger than existing size (32 extents)\n", 5, errdefs.ErrInvalidArgument},
	{"snapshot changes with its origin", "lab/chaos-7.lvchange-an-snapshot.stderr",
		"Change of snapshot vol/_snapshot-2 will also change its origin vol/volume-2. Proceed? [y/n]: [n]\nLogical volume vol/_snapshot-2 not changed.\n", 5, errdefs.ErrInvalidArgument},

	{"unknown text", "made up: an unrecognised message", "  Something new went wrong\n", 5, errdefs.ErrUnknown},
	{"known text, other exit code", "made up: exit 3 is a command-line error",
		"  Volume group \"vol\" not found\n", 3, errdefs.ErrUnknown},
}

func TestClassifyCases(t *testing.T) {
	logs := map[string]string{}
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.source, "lab/") {
				log, ok := logs[tc.source]
				if !ok {
					b, err := os.ReadFile(filepath.Join("testdata", tc.source))
					if err != nil {
						t.Fatal(err)
					}
					log = string(b)
					logs[tc.source] = log
				}
				for _, line := range strings.Split(strings.TrimRight(tc.stderr, "\n"), "\n") {
					if !strings.Contains(log, line+"\n") {
						t.Fatalf("line %q is not in %s", line, tc.source)
					}
				}
			}
			argv := []string{"lvchange", "-aey", "vol/lv1"}
			rerr := &run.Error{Argv: argv, ExitCode: tc.exit, Stderr: tc.stderr}
			err := Classify(argv, rerr)
			if !errors.Is(err, tc.class) {
				t.Fatalf("class: err = %v, want tc.class", err)
			}
			if errdefs.ClassOf(err) != tc.class {
				t.Fatalf("class: errdefs.ClassOf(err) = %v, want %v", errdefs.ClassOf(err), tc.class)
			}
			var got *run.Error
			if !errors.As(err, &got) {
				t.Fatal("the *run.Error must stay in the chain: errors.As(err, &got) = false, want true")
			}
			if got != rerr {
				t.Fatalf("the *run.Error must stay in the chain: got = %v, want %v", got, rerr)
			}
			if tc.class == errdefs.ErrUnknown && !strings.Contains(err.Error(), strings.TrimSpace(tc.stderr)) {
				t.Fatalf("unknown error must keep the full stderr: %v", err)
			}
		})
	}
}

func TestClassifyLockConflictHolder(t *testing.T) {
	for stderr, want := range map[string]errdefs.LockConflictError{
		"  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n":             {VG: "vol", LV: "lv1"},
		"  LV locked by other host: vol/volume-1.x (host_id 17)\n  Failed to lock logical volume.\n": {VG: "vol", LV: "volume-1.x", HostID: 17},
	} {
		err := Classify([]string{"lvchange"}, &run.Error{ExitCode: 5, Stderr: stderr})
		var lc *errdefs.LockConflictError
		if !errors.As(err, &lc) {
			t.Fatalf("%q: want *LockConflictError, got %T %v", stderr, err, err)
		}
		if lc.VG != want.VG {
			t.Fatalf("lc.VG = %v, want %v", lc.VG, want.VG)
		}
		if lc.LV != want.LV {
			t.Fatalf("lc.LV = %v, want %v", lc.LV, want.LV)
		}
		if lc.HostID != want.HostID {
			t.Fatalf("lc.HostID = %v, want %v", lc.HostID, want.HostID)
		}
	}
	// A VG lock conflict names no LV: a plain LockConflict class.
	err := Classify([]string{"lvcreate"}, &run.Error{ExitCode: 5, Stderr: "  VG vol lock failed: held by other host (host_id 3)\n"})
	var lc *errdefs.LockConflictError
	if errors.As(err, &lc) {
		t.Fatalf("VG conflict: got a %T naming an LV (%v), want the plain class", lc, err)
	}
	if !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("VG conflict: err = %v, want errdefs.ErrLockConflict", err)
	}
	if !strings.Contains(err.Error(), "VG vol lock failed: held by other host (host_id 3)") {
		t.Fatalf("message must carry lvm's line: %v", err)
	}
}

func TestClassifyNonExitErrors(t *testing.T) {
	if Classify(nil, nil) != nil {
		t.Fatal("nil error must stay nil")
	}
	timeout := &run.Error{Argv: []string{"lvs"}, ExitCode: -1, TimedOut: true, Err: context.DeadlineExceeded, Stderr: "  partial\n"}
	err := Classify(timeout.Argv, timeout)
	if errdefs.ClassOf(err) != errdefs.ErrCommandTimeout {
		t.Fatalf("timeout: errdefs.ClassOf(err) = %v, want %v", errdefs.ClassOf(err), errdefs.ErrCommandTimeout)
	}
	if !strings.Contains(err.Error(), "partial") {
		t.Fatalf("timeout: err.Error() = %q, want it to contain \"partial\"", err.Error())
	}
	cancelled := &run.Error{Argv: []string{"lvs"}, ExitCode: -1, Err: context.Canceled}
	err = Classify(cancelled.Argv, cancelled)
	if errdefs.ClassOf(err) != errdefs.ErrUnknown {
		t.Fatalf("cancelled: errdefs.ClassOf(err) = %v, want %v", errdefs.ClassOf(err), errdefs.ErrUnknown)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v, want context.Canceled", err)
	}
	other := errors.New("runner broke")
	err = Classify(nil, other)
	if errdefs.ClassOf(err) != errdefs.ErrUnknown {
		t.Fatalf("plain error: errdefs.ClassOf(err) = %v, want %v", errdefs.ClassOf(err), errdefs.ErrUnknown)
	}
	if !errors.Is(err, other) {
		t.Fatalf("plain error: err = %v, want other", err)
	}
	if !strings.Contains(err.Error(), "lvm: runner broke") {
		t.Fatalf("plain error: err.Error() = %q, want it to contain \"lvm: runner broke\"", err.Error())
	}
}

func TestSplitBatchStderr(t *testing.T) {
	stderr := "  Reading VG vol without a lock.\n" +
		"  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n" +
		"  Failed to find logical volume \"vol/lv2.\"\n" +
		"  /dev/vol/lv3: something\n" +
		"  vol/lv10 is not requested, other/lv1 is another VG\n"
	perLV, rest := splitBatchStderr("vol", []string{"lv1", "lv2.", "lv3", "lv4"}, stderr)
	if len(perLV["lv1"]) != 2 {
		t.Fatalf("perLV: len(perLV[\"lv1\"]) = %v, want 2", len(perLV["lv1"]))
	}
	if len(perLV["lv2."]) != 1 {
		t.Fatalf("perLV: len(perLV[\"lv2.\"]) = %v, want 1", len(perLV["lv2."]))
	}
	if len(perLV["lv3"]) != 1 {
		t.Fatalf("perLV: len(perLV[\"lv3\"]) = %v, want 1", len(perLV["lv3"]))
	}
	if perLV["lv4"] != nil {
		t.Fatalf("perLV: perLV[\"lv4\"] = %v, want nil", perLV["lv4"])
	}
	if len(rest) != 2 {
		t.Fatalf("rest: len(rest) = %v, want 2", len(rest))
	}
	if rest[0] != "Reading VG vol without a lock." {
		t.Fatalf("rest: rest[0] = %q, want \"Reading VG vol without a lock.\"", rest[0])
	}
}
