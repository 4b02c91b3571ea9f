//go:build !linux

package modbus

import (
	"errors"
	"fmt"
	"syscall"
)

// bindToDevice fails: binding a socket to an interface needs Linux.
func bindToDevice(iface string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, _ syscall.RawConn) error {
		return fmt.Errorf("modbus: bind to interface %s: %w", iface, errors.ErrUnsupported)
	}
}
