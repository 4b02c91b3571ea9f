//go:build !linux

package modbus

import "net"

// detach keeps the connection in the runtime's network poller.
func detach(c net.Conn) (deadlineConn, error) { return c, nil }
