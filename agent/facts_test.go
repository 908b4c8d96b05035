package agent

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/internal/run"
)

// On a fenced host lvs cannot read the VG (its PV is gone): the holdings
// come from the kernel's tables, recorded on a lab guest after the kill
// hook ran, each LV on the error target.
func TestKernelHoldingsOfAFencedHost(t *testing.T) {
	table, err := os.ReadFile("testdata/dmsetup-table.fenced.lab.txt")
	if err != nil {
		t.Fatal(err)
	}
	r := run.Func(func(_ context.Context, c run.Cmd) (run.Result, error) {
		if want := []string{"dmsetup", "table"}; !slices.Equal(c.Argv, want) {
			t.Fatalf("argv %q, want %q", c.Argv, want)
		}
		return run.Result{Stdout: table}, nil
	})
	tables, err := lvTables(context.Background(), dm.New(r, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]bool{{"vol", "shared-disk"}: true, {"vol", "vm-disk"}: true}
	if len(tables) != len(want) {
		t.Fatalf("tables %v, want %v (lun0 and the lvmlock LV left out)", tables, want)
	}
	for k, v := range want {
		if tables[k] != v {
			t.Errorf("tables[%v] = %v, want %v", k, tables[k], v)
		}
	}
	held := kernelHoldings("vol", tables)
	var got []string
	for _, h := range held {
		if !h.Active || h.Mode != "" {
			t.Errorf("%s: active %v mode %q, want active without a known lock", h.LV, h.Active, h.Mode)
		}
		got = append(got, h.LV)
	}
	if want := []string{"shared-disk", "vm-disk"}; !slices.Equal(got, want) {
		t.Errorf("holdings %q, want %q", got, want)
	}
	if got := kernelHoldings("other", tables); len(got) != 0 {
		t.Errorf("holdings of another VG: %v, want none", got)
	}
}
