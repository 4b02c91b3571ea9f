package supervisortest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Context returns a context bounded to d and cancelled when the test ends,
// so that a wait the code under test never finishes fails the test instead
// of stalling it.
func Context(t testing.TB, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// KexecFiles writes into dir what a kexec backend's bring-up reads: a
// minimal ELF64 vmlinux and a sparse file of memBytes bytes that stands in
// for /dev/mem. It skips the test, saying why, when the file system cannot
// hold that sparse file.
func KexecFiles(t testing.TB, dir string, memBytes int64) (kernel, devmem string) {
	t.Helper()
	kernel = filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 4089)...), 0o644); err != nil {
		t.Fatal(err)
	}
	devmem = filepath.Join(dir, "mem")
	f, err := os.Create(devmem)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(memBytes); err != nil {
		t.Skipf("no sparse file of %d bytes for /dev/mem here: %v", memBytes, err)
	}
	return kernel, devmem
}
