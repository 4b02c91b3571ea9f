package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Kernel returns Debian's newest PREEMPT_RT kernel in /boot, or skips t
// (with the package to install) without it or without QEMU.
func Kernel(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
	if len(ks) == 0 {
		t.Skip("no PREEMPT_RT kernel in /boot (apt-get install linux-image-rt-amd64)")
	}
	return ks[len(ks)-1]
}

// Init builds the static mkrt-init the guests boot into a temporary
// directory of t's and returns its path.
func Init(t testing.TB) string {
	t.Helper()
	init := filepath.Join(t.TempDir(), "mkrt-init")
	cmd := exec.Command("go", "build", "-o", init, "github.com/mkrt/mkrt/cmd/mkrt-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vmtest: building mkrt-init: %v\n%s", err, out)
	}
	return init
}
