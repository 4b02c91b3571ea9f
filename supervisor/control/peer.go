package control

import (
	"fmt"
	"slices"
)

// Cred is a socket peer's identity.
type Cred struct {
	PID    int32
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups, when known
}

// authorizer lets root, the supervisor's uid and members of the socket's group in.
type authorizer struct {
	uid int
	gid int
}

func (a authorizer) check(c Cred) error {
	if c.UID == 0 || int64(c.UID) == int64(a.uid) || int64(c.GID) == int64(a.gid) ||
		slices.Contains(c.Groups, uint32(a.gid)) {
		return nil
	}
	return fmt.Errorf("%w: uid %d (pid %d) is not root, uid %d or in group %d", ErrForbidden, c.UID, c.PID, a.uid, a.gid)
}
