package control

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerCred reads SO_PEERCRED of a unix connection, and the peer's
// supplementary groups from /proc/<pid>/status.
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
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, fmt.Errorf("control: peer: %w", err)
	}
	if serr != nil {
		return Cred{}, fmt.Errorf("control: getsockopt(SO_PEERCRED): %w", serr)
	}
	out := Cred{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(int(cred.Pid)) + "/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if g, ok := strings.CutPrefix(l, "Groups:"); ok {
				for _, f := range strings.Fields(g) {
					if n, err := strconv.ParseUint(f, 10, 32); err == nil {
						out.Groups = append(out.Groups, uint32(n))
					}
				}
			}
		}
	}
	return out, nil
}
