package process

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

type signal = syscall.Signal

const (
	termSignal = syscall.SIGTERM
	killSignal = syscall.SIGKILL
)

// sysProcAttr puts the child in a session and process group of its own
// (signals reach the whole group; a terminal's hang-up and Ctrl-C do not)
// and lets it outlive the supervisor: the control program must not die
// with the general side (a later supervisor adopts it).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// watchPID returns a channel closed when process pid (not a child of
// this one) has ended, through a pidfd.
func watchPID(pid int) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				return
			}
		}
	}()
	return done, nil
}

func signalGroup(pid int, sig signal) error {
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process: kill(-%d, %v): %w", pid, sig, err)
	}
	return nil
}
