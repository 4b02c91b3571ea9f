package modbus

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/configs"
)

// startDial creates a TCP socket for dev on the calling thread, and so in
// that thread's network namespace, binds it to the device's interface and
// starts a non-blocking connect. The connector it returns waits (poll(2),
// until its context's deadline) for the connect to complete, on whatever
// thread calls it, and creates no socket: DriveSafe starts every device's
// connect from its calling goroutine and completes them concurrently.
//
// The address must be an IP address and port: resolving a host name would
// open sockets on other threads.
func startDial(_ context.Context, dev *configs.Device) connector {
	fail := func(err error) connector {
		return func(context.Context) (deadlineConn, error) { return nil, err }
	}
	ap, err := netip.ParseAddrPort(dev.Address)
	if err != nil {
		return fail(fmt.Errorf("%w: device %s: address %q is not an IP address and port; DriveSafe without a Dial does not resolve names (that would open sockets off the calling thread)", ErrConfig, dev.Name, dev.Address))
	}
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if a := ap.Addr().Unmap(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	} else {
		s6 := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return fail(fmt.Errorf("%w: zone of %s: %w", ErrConnect, dev.Address, err))
			}
			s6.ZoneId = uint32(ifi.Index)
		}
		family, sa = unix.AF_INET6, s6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrConnect, os.NewSyscallError("socket", err)))
	}
	if dev.Interface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev.Interface); err != nil {
			_ = unix.Close(fd)
			return fail(fmt.Errorf("%w: setsockopt(SO_BINDTODEVICE, %q): %w", ErrConnect, dev.Interface, err))
		}
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		_ = unix.Close(fd)
		return fail(fmt.Errorf("%w: connect %s: %w", ErrConnect, dev.Address, os.NewSyscallError("connect", err)))
	}
	f := &fdConn{fd: fd}
	return func(ctx context.Context) (deadlineConn, error) {
		if err := ctx.Err(); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("%w: connect %s: %w", ErrConnect, dev.Address, err)
		}
		dl, _ := ctx.Deadline()
		_ = f.SetDeadline(dl)
		if err := f.wait(unix.POLLOUT); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("%w: connect %s: %w", ErrConnect, dev.Address, err)
		}
		errno, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			_ = f.Close()
			return nil, fmt.Errorf("%w: connect %s: %w", ErrConnect, dev.Address, os.NewSyscallError("getsockopt", err))
		case errno != 0:
			_ = f.Close()
			return nil, fmt.Errorf("%w: connect %s: %w", ErrConnect, dev.Address, os.NewSyscallError("connect", unix.Errno(errno)))
		}
		return f, nil
	}
}
