package kexec

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
)

// A hand-over runs a second kernel beside the first, both under this
// process, and both need the backend's kernfs. SharedMount and
// SharedUnmount count the users of a mount this process made, per kernel
// and mount point, so the second shares the first one's mount and the last
// to stop unmounts it: the host is left as it was found.

var shared = struct {
	sync.Mutex
	users map[mountKey]int
}{users: map[mountKey]int{}}

type mountKey struct {
	sys    Syscalls
	target string
}

// SharedMount mounts a kernfs of fstype at target for one more user. When
// this process mounted it already, it counts the user; else, when
// mountedElsewhere reports it mounted (by the host's own tools), it does
// nothing and ours is false; else it mounts. Only a user with ours true
// calls SharedUnmount.
func SharedMount(sys Syscalls, fstype, target string, mountedElsewhere func() (bool, error)) (ours bool, err error) {
	key := mountKey{sys, target}
	shared.Lock()
	defer shared.Unlock()
	if shared.users[key] > 0 {
		shared.users[key]++
		return true, nil
	}
	if m, err := mountedElsewhere(); err != nil || m {
		return false, err
	}
	if err := Mount(sys, fstype, target); err != nil {
		return false, err
	}
	shared.users[key] = 1
	return true, nil
}

// SharedUnmount drops one user of a mount SharedMount made; the last one
// unmounts it.
func SharedUnmount(sys Syscalls, target string) error {
	key := mountKey{sys, target}
	shared.Lock()
	defer shared.Unlock()
	if shared.users[key]--; shared.users[key] > 0 {
		return nil
	}
	delete(shared.users, key)
	return Unmount(sys, target)
}

// Kernfs is one partition's use of its backend's kernfs: it mounts it
// through SharedMount at the start and lets go of it at the stop. The zero
// value is ready to use.
type Kernfs struct {
	mu   sync.Mutex
	ours bool
}

// Mount takes the kernfs of fstype at target for this partition. probe
// reads something that exists only while the kernfs is mounted: it says
// whether the host's own tools mounted it already (then it is left to
// them).
func (k *Kernfs) Mount(sys Syscalls, fstype, target string, probe func() error) error {
	ours, err := SharedMount(sys, fstype, target, func() (bool, error) {
		err := probe()
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", fstype, err)
	})
	k.mu.Lock()
	k.ours = ours
	k.mu.Unlock()
	return err
}

// Unmount lets go of a kernfs Mount took; the last user of this process
// unmounts it.
func (k *Kernfs) Unmount(sys Syscalls, target string) error {
	k.mu.Lock()
	ours := k.ours
	k.ours = false
	k.mu.Unlock()
	if !ours {
		return nil
	}
	return SharedUnmount(sys, target)
}

// Range is a range of physical memory.
type Range struct{ Base, Bytes uint64 }

// Overlaps reports whether r and o share a byte.
func (r Range) Overlaps(o Range) bool { return r.Base < o.Base+o.Bytes && o.Base < r.Base+r.Bytes }

// Reservations are the ranges the host's command line (/proc/cmdline)
// keeps from the kernel with memmap=<size>$<addr>: where a shared region
// can be: a Parker shared region, a Jailhouse cell's window.
func Reservations(cmdline string) []Range {
	var out []Range
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, "memmap=")
		if !ok {
			continue
		}
		for _, m := range strings.Split(v, ",") {
			size, addr, ok := strings.Cut(m, "$")
			if !ok {
				continue // another memmap kind (@ usable, # ACPI, ! persistent)
			}
			s, ok1 := memparse(size)
			a, ok2 := memparse(addr)
			if ok1 && ok2 && s > 0 {
				out = append(out, Range{Base: a, Bytes: s})
			}
		}
	}
	return out
}

// memparse reads a size or address as the kernel's memparse does: a
// number (0x for hex) with an optional K, M, G or T suffix.
func memparse(s string) (uint64, bool) {
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseUint(s, 0, 64)
	return v * mult, err == nil
}
