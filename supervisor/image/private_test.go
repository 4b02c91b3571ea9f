package image

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/supervisor"
)

// TestInitramfsIsPrivate: the initramfs carries the config and so every
// MQTT password in it; it was written 0644 (and an existing file kept its
// mode). Now only its owner reads it, inside and outside the guest.
func TestInitramfsIsPrivate(t *testing.T) {
	dir := t.TempDir()
	// A world-readable initramfs from an earlier build.
	if err := os.WriteFile(filepath.Join(dir, "initramfs.cpio.gz"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	initrd, m, err := Build(Options{Init: fakeELF(t), Config: []byte("metadata: {name: x}\nbridge: {mqtt: {password: secret}}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(dir, initrd, m); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "initramfs.cpio.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("initramfs mode %v, want 0600", st.Mode().Perm())
	}
	for _, r := range archiveRecords(t, initrd) {
		if r.Name == pid1.ConfigPath && r.Mode&0o077 != 0 {
			t.Errorf("%s in the archive has mode %#o, want 0600", r.Name, r.Mode&0o777)
		}
	}
}

// TestConfigTextHashesAlikeInGuest: a config naming a file relative to
// itself resolves differently at /etc/mkrt/config.yaml in the guest; the
// guest must get a text that hashes like the host's config.
func TestConfigTextHashesAlikeInGuest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	src := "metadata: {name: x}\nbridge: {mqtt: {password_file: pw}}\n"
	for name, b := range map[string]string{path: src, filepath.Join(dir, "pw"): "secret\n"} {
		if err := os.WriteFile(name, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	text, err := configText(supervisor.Spec{Config: cfg, ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	guest, err := configs.LoadBytes("/"+pid1.ConfigPath, text)
	if err != nil {
		t.Fatal(err)
	}
	if guest.Hash() != cfg.Hash() {
		t.Errorf("the guest's config hashes differently:\n%s", text)
	}
}

// archiveRecords reads the records of a gzipped newc initramfs.
func archiveRecords(t *testing.T, initramfs []byte) []cpio.Record {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(initramfs))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
