package process

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mkrt/mkrt/configs"
)

// irqMove is one IRQ whose affinity was changed, with its original list.
type irqMove struct {
	irq  string
	orig string
}

// moveIRQs takes every IRQ allowed on one of cpus off them: the new
// affinity is its old one minus cpus, or every online CPU minus cpus when
// that is empty. IRQs the kernel refuses to move (EIO for per-CPU and
// managed interrupts, EINVAL, and EPERM for IRQs a hypervisor pins) are
// counted as skipped. When no IRQ could be moved and a write was refused
// for permission, that error is returned (the caller degrades: not root).
func moveIRQs(fsys FS, procRoot string, cpus, online []int) (moved []irqMove, skipped int, err error) {
	names, err := fsys.ReadDir(path.Join(procRoot, "irq"))
	if err != nil {
		return nil, 0, fmt.Errorf("process: irq: %w", err)
	}
	rest := minus(online, cpus)
	var permErr error
	for _, n := range names {
		if _, err := strconv.Atoi(n); err != nil {
			continue
		}
		file := path.Join(procRoot, "irq", n, "smp_affinity_list")
		b, err := fsys.ReadFile(file)
		if err != nil {
			continue
		}
		orig := strings.TrimSpace(string(b))
		cur, err := configs.ParseCPUList(orig)
		if err != nil || !overlaps(cur, cpus) {
			continue
		}
		target := minus(cur, cpus)
		if len(target) == 0 {
			target = rest
		}
		if len(target) == 0 {
			skipped++
			continue
		}
		if err := fsys.WriteFile(file, []byte(configs.CPUList(target).String())); err != nil {
			if permission(err) && permErr == nil {
				permErr = fmt.Errorf("process: irq: %w", err)
			}
			skipped++ // EIO: per-CPU or managed IRQ; EINVAL: no such target
			continue
		}
		moved = append(moved, irqMove{irq: n, orig: orig})
	}
	if len(moved) == 0 && permErr != nil {
		return nil, skipped, permErr
	}
	return moved, skipped, nil
}

// restoreIRQs writes back the original affinities, in reverse order. IRQs
// that vanished or refuse the write now (EIO) are ignored.
func restoreIRQs(fsys FS, procRoot string, moved []irqMove) error {
	var errs []error
	for _, m := range slices.Backward(moved) {
		err := fsys.WriteFile(path.Join(procRoot, "irq", m.irq, "smp_affinity_list"), []byte(m.orig))
		if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("process: irq %s: restore %q: %w", m.irq, m.orig, err))
		}
	}
	return errors.Join(errs...)
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func minus(a, b []int) []int {
	var out []int
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
