package supervisortest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
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

// FailEachStep checks a backend's unwinding, one subtest per step of steps
// (the backend's Steps, for their names): setup makes a partition with a
// failure injected into that step and returns it with a summary of the
// host it changes (a nil partition: the test has no injection for the
// step, which fails it). The partition's Start must fail in that step's
// do and leave the summary as it was before.
func FailEachStep(t *testing.T, steps []supervisor.Step, setup func(t *testing.T, step string) (supervisor.Partition, func() string)) {
	t.Helper()
	for _, s := range steps {
		t.Run(s.Name, func(t *testing.T) {
			p, host := setup(t, s.Name)
			if p == nil {
				t.Fatalf("no failure to inject into step %s", s.Name)
			}
			before := host()
			err := p.Start(Context(t, 30*time.Second))
			var se *supervisor.StepError
			if !errors.As(err, &se) || se.Step != s.Name || se.Action != "do" {
				t.Fatalf("start = %v, want a failure of step %s", err, s.Name)
			}
			if after := host(); after != before {
				t.Errorf("host after unwinding %q, before %q", after, before)
			}
		})
	}
}
