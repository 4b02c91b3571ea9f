package kexectest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"syscall"

	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// Host is what the fakes of the kexec-family kernels (multikerneltest,
// parkertest) share: the Recorder of their system calls, the host's files
// (/proc/filesystems, /proc/iomem, /proc/cpuinfo), the file faults a test
// injects, and the backend's kernfs of one type at one mount point, which
// MountCall runs the mount(2) and umount2(2) of: ENODEV when the kernel
// lacks the kernfs, ENOENT for another mount point, EBUSY when it is
// mounted already; EINVAL for an unmount of what is not mounted, EBUSY
// while the fake says the kernfs is busy.
//
// A fake embeds a *Host, whose Recorder hands it the calls that passed
// the checks; it runs MountCall for the mounts. Safe for concurrent use;
// Host never calls back into the fake, so a fake may call it while holding
// its own lock.
type Host struct {
	*Recorder
	fstype, root string
	supported    bool
	faults       supervisortest.Faults

	mu      sync.Mutex
	mounted bool
	files   map[string]string
}

// NewHost returns the host of a kernel with (supported) or without the
// kernfs fstype, mounted at root, serving files (path -> content); a
// kernel with it lists it in /proc/filesystems. handle is the fake's state
// machine for the system calls (Recorder.Handle).
func NewHost(fstype, root string, supported bool, files map[string]string, handle func(Call) error) *Host {
	h := &Host{Recorder: &Recorder{Handle: handle}, fstype: fstype, root: root, supported: supported, files: map[string]string{}}
	for p, c := range files {
		h.files[p] = c
	}
	if supported {
		h.files["/proc/filesystems"] += "nodev\t" + fstype + "\n"
	}
	return h
}

// Fail makes op ("read", "write", "mkdir", "rmdir", "readdir") on name
// fail with err; nil clears it. (Recorder.Fail does the same per system
// call.)
func (h *Host) Fail(op, name string, err error) { h.faults.Fail(op, name, err) }

// Check returns the error injected for op on name, or nil.
func (h *Host) Check(op, name string) error { return h.faults.Check(op, name) }

// HostFile reads a host file: the injected read fault, or its content. ok
// is false when name is no host file (and no fault was injected).
func (h *Host) HostFile(name string) (data []byte, ok bool, err error) {
	if err := h.Check("read", name); err != nil {
		return nil, true, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.files[name]
	return []byte(c), ok, nil
}

// Mounted reports whether the kernfs is mounted.
func (h *Host) Mounted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mounted
}

// Summary is a summary of the kernel's state for a fake's State: the
// mount, then what (e.g. "baseline=1234"), then each entry of entries by
// name order, as line formats it.
func Summary[E any](h *Host, what string, entries map[string]E, line func(name string, e E) string) string {
	s := fmt.Sprintf("mounted=%v %s", h.Mounted(), what)
	for _, n := range slices.Sorted(maps.Keys(entries)) {
		s += " " + line(n, entries[n])
	}
	return s
}

// MountCall runs c when it is a mount(2) or umount2(2) (ok true) against
// the kernfs; busy refuses the unmount with EBUSY.
func (h *Host) MountCall(c Call, busy bool) (ok bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch c.Syscall {
	case "mount":
		switch {
		case c.FSType != h.fstype || !h.supported:
			return true, syscall.ENODEV
		case c.Target != h.root:
			return true, syscall.ENOENT
		case h.mounted:
			return true, syscall.EBUSY
		}
		h.mounted = true
		return true, nil
	case "umount2":
		switch {
		case c.Target != h.root || !h.mounted:
			return true, syscall.EINVAL
		case busy:
			return true, syscall.EBUSY
		}
		h.mounted = false
		return true, nil
	}
	return false, nil
}
