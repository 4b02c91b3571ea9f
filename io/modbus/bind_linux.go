package modbus

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindToDevice returns a net.Dialer Control func that binds the socket to
// the named interface (SO_BINDTODEVICE; needs CAP_NET_RAW before Linux 5.7).
func bindToDevice(iface string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
		}); err != nil {
			return fmt.Errorf("modbus: bind to interface %s: %w", iface, err)
		}
		if serr != nil {
			return fmt.Errorf("modbus: setsockopt(SO_BINDTODEVICE, %q): %w", iface, serr)
		}
		return nil
	}
}
