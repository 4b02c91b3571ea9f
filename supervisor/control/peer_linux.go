package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred reads the identity of a unix connection's peer as it was when
// the peer connected: SO_PEERCRED (pid, uid, gid) and SO_PEERGROUPS (the
// supplementary groups). Nothing is looked up by pid, which another
// process may have taken by the time the connection is accepted.
func peerCred(c net.Conn) (Cred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Cred{}, fmt.Errorf("control: peer: not a unix socket (%T)", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, fmt.Errorf("control: peer: %w", err)
	}
	var cred *unix.Ucred
	var groups []uint32
	var serr, gerr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		groups, gerr = peerGroups(int(fd))
	}); err != nil {
		return Cred{}, fmt.Errorf("control: peer: %w", err)
	}
	if serr != nil {
		return Cred{}, fmt.Errorf("control: getsockopt(SO_PEERCRED): %w", serr)
	}
	if gerr != nil {
		return Cred{}, gerr
	}
	return Cred{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid, Groups: groups}, nil
}

// peerGroups is getsockopt(SO_PEERGROUPS) (Linux 4.13): the peer's
// supplementary gids at connect time. unix.GetsockoptString would cut
// the gids at their first zero byte, so the call is made here.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		size := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case e == 0:
			return buf[:size/4], nil
		case errors.Is(e, unix.ERANGE) && int(size/4) > len(buf):
			buf = make([]uint32, size/4) // size is what it takes
		case errors.Is(e, unix.ENOPROTOOPT):
			return nil, fmt.Errorf("control: getsockopt(SO_PEERGROUPS): %w (needs Linux 4.13 or later)", os.NewSyscallError("getsockopt", e))
		default:
			return nil, fmt.Errorf("control: getsockopt(SO_PEERGROUPS): %w", os.NewSyscallError("getsockopt", e))
		}
	}
}
