package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Accel is the accelerator chosen for a host and why.
type Accel struct {
	Name string // "kvm" or "tcg"
	Why  string
}

// DetectAccel picks KVM when it works, else TCG. /dev/kvm existing is not
// enough (nested KVM can hang during boot), so KVM is proven by booting the
// image in probe mode (mkrt.mode=probe) and waiting for its report, bounded
// by timeout. The answer is cached in cache (e.g. /run/mkrt/accel, which is
// cleared at host boot); an empty cache path disables caching. MKRT_ACCEL
// (kvm or tcg) overrides detection.
func DetectAccel(ctx context.Context, qemu Config, timeout time.Duration, cache string) Accel {
	if a := os.Getenv("MKRT_ACCEL"); a == "kvm" || a == "tcg" {
		return Accel{a, "MKRT_ACCEL=" + a}
	}
	if cache != "" {
		if b, err := os.ReadFile(cache); err == nil {
			name, why, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
			if name == "kvm" || name == "tcg" {
				return Accel{name, why + " (cached in " + cache + ")"}
			}
		}
	}
	a := probeKVM(ctx, qemu, timeout)
	if cache != "" {
		_ = os.MkdirAll(filepath.Dir(cache), 0o755)
		_ = os.WriteFile(cache, []byte(a.Name+" "+a.Why+"\n"), 0o644)
	}
	return a
}

func probeKVM(ctx context.Context, qemu Config, timeout time.Duration) Accel {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return Accel{"tcg", fmt.Sprintf("KVM not usable: %v", err)}
	}
	f.Close()
	qemu.Accel = "kvm"
	qemu.Cmdline += " mkrt.mode=probe"
	qemu.ShmPath, qemu.TakeFromPath, qemu.QMP, qemu.NIC = "", "", "", NIC{}
	args, err := qemu.Args()
	if err != nil {
		return Accel{"tcg", err.Error()}
	}
	bin := qemu.QEMU
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(pctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if bytes.Contains(out.Bytes(), []byte("MKRT-PROBE")) {
		return Accel{"kvm", "KVM probe boot reached mkrt-init"}
	}
	if pctx.Err() != nil {
		return Accel{"tcg", fmt.Sprintf("KVM probe boot did not reach mkrt-init in %s (nested KVM?)", timeout)}
	}
	return Accel{"tcg", fmt.Sprintf("KVM probe boot failed: %v", err)}
}
