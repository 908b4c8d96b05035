package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j", "journal.json")
	must(t, Write(p, []byte("one"), 0o600))
	must(t, Write(p, []byte("two"), 0o640))
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" {
		t.Fatalf("string(b) = %q, want \"two\"", string(b))
	}
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("st.Mode().Perm() = %v, want %v", st.Mode().Perm(), 0o640)
	}
	{
		err := Write(filepath.Join(p, "x"), nil, 0o600)
		if err == nil {
			t.Fatal("want not-a-directory error, got: err = nil, want non-nil")
		}
		if !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("want not-a-directory error, got: err.Error() = %q, want it to contain \"not a directory\"", err.Error())
		}
	}
}
