package deploy

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// An existing state directory others may read or write is narrowed: it
// holds each generation's config with its credentials and the audit log.
func TestStateDirNarrowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := privateDir(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o750 {
		t.Errorf("state directory mode %#o, want 0750", m)
	}
	fresh := filepath.Join(t.TempDir(), "a", "b")
	if err := privateDir(fresh, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm()&0o027 != 0 {
		t.Errorf("new state directory: %v, mode %v", err, st.Mode())
	}
}
