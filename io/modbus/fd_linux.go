package modbus

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdConn is a connected TCP socket taken out of the Go runtime's network
// poller: the I/O goroutine's thread blocks in poll(2) for its answers, the
// way libmodbus blocks in select(2).
//
// Why: a socket in the runtime's poller is registered with epoll, so every
// segment that arrives for it (the ACK of a request, the answer) wakes the
// thread that waits in epoll_wait, and a read that finds no data parks the
// goroutine and is woken through the poller. On a loaded 2-core machine
// those extra thread wake-ups cost more than the request's whole round
// trip; without them one scan costs about what libmodbus pays
// (BenchmarkPollThroughput).
type fdConn struct {
	fd       int
	deadline time.Time
	pfd      [1]unix.PollFd
}

// detach moves c's socket out of the runtime's poller into an fdConn and
// closes c. Connections that are not sockets (test pipes) stay as they are.
func detach(c net.Conn) (deadlineConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c, nil
	}
	nfd, derr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("modbus: socket of %s: %w", c.RemoteAddr(), err)
	}
	// Closing c deregisters the socket from epoll; the duplicate keeps it open.
	_ = c.Close()
	if derr != nil {
		return nil, fmt.Errorf("modbus: fcntl(F_DUPFD_CLOEXEC) on %s: %w", c.RemoteAddr(), derr)
	}
	return &fdConn{fd: nfd}, nil
}

func (f *fdConn) SetDeadline(t time.Time) error { f.deadline = t; return nil }

// wait polls for events until the deadline.
func (f *fdConn) wait(events int16) error {
	for {
		ms := int((time.Until(f.deadline) + time.Millisecond - 1) / time.Millisecond)
		if ms <= 0 {
			return os.ErrDeadlineExceeded
		}
		f.pfd[0] = unix.PollFd{Fd: int32(f.fd), Events: events}
		n, err := unix.Poll(f.pfd[:], ms)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return os.NewSyscallError("poll", err)
		case n > 0:
			return nil // readable, writable, or an error the next call reports
		}
	}
}

// Read waits for data until the deadline, then reads what has arrived.
func (f *fdConn) Read(b []byte) (int, error) {
	for {
		if err := f.wait(unix.POLLIN); err != nil {
			return 0, err
		}
		n, err := unix.Read(f.fd, b)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write writes all of b, waiting for buffer space until the deadline.
func (f *fdConn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(f.fd, b[done:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			if err := f.wait(unix.POLLOUT); err != nil {
				return done, err
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return done, os.NewSyscallError("write", err)
		}
		done += n
	}
	return done, nil
}

func (f *fdConn) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
