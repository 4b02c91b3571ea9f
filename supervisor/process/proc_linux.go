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

func signalGroup(pid int, sig signal) error {
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process: kill(-%d, %v): %w", pid, sig, err)
	}
	return nil
}
