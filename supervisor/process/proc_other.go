//go:build !linux

package process

import (
	"fmt"
	"os"
	"syscall"
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
