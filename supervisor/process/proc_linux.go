package process

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"golang.org/x/sys/unix"
)

type signal = syscall.Signal

const (
	termSignal = syscall.SIGTERM
	killSignal = syscall.SIGKILL
)

// sysProcAttr puts the child in its own process group (signals reach the
// whole group) and kills it if the supervisor dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(pid int, sig signal) error {
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process: kill(-%d, %v): %w", pid, sig, err)
	}
	return nil
}

func exitOf(cmd *exec.Cmd, werr error, now time.Time) supervisor.Exit {
	e := supervisor.Exit{Code: -1, Time: now}
	if cmd.ProcessState == nil {
		e.Signal = fmt.Sprintf("wait failed: %v", werr)
		return e
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal().String()
		return e
	}
	e.Code = cmd.ProcessState.ExitCode()
	return e
}
