package kexec

import "sync"

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

// Range is a range of physical memory.
type Range struct{ Base, Bytes uint64 }

// Overlaps reports whether r and o share a byte.
func (r Range) Overlaps(o Range) bool { return r.Base < o.Base+o.Bytes && o.Base < r.Base+r.Bytes }
