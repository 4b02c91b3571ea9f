//go:build !linux

package control

import (
	"fmt"
	"net"
)

// peerCred is not available off Linux: every peer is refused.
func peerCred(net.Conn) (Cred, error) {
	return Cred{}, fmt.Errorf("control: SO_PEERCRED needs Linux")
}
