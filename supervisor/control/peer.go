package control

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"

	"github.com/mkrt/mkrt/bridge/plant"
)

// Cred is a socket peer's identity, as it was when the peer connected.
type Cred struct {
	PID    int32
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups (SO_PEERGROUPS)
}

// Principal is the peer as the audit names it: protocol ("cli", "apply"),
// the OS user name of its uid (the number when no user has it) and
// "uid N gid N pid N".
func (c Cred) Principal(protocol string) plant.Principal {
	name := strconv.FormatUint(uint64(c.UID), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return plant.Principal{Protocol: protocol, User: name, Peer: fmt.Sprintf("uid %d gid %d pid %d", c.UID, c.GID, c.PID)}
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
