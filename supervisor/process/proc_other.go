//go:build !linux

package process

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

type signal = os.Signal

var (
	termSignal signal = os.Interrupt
	killSignal signal = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pid int, sig signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("process: find %d: %w", pid, err)
	}
	return p.Signal(sig)
}

func exitOf(cmd *exec.Cmd, werr error, now time.Time) supervisor.Exit {
	if cmd.ProcessState == nil {
		return supervisor.Exit{Code: -1, Signal: fmt.Sprintf("wait failed: %v", werr), Time: now}
	}
	return supervisor.Exit{Code: cmd.ProcessState.ExitCode(), Time: now}
}
