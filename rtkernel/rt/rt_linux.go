package rt

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const dmaLatencyPath = "/dev/cpu_dma_latency"

func mlockall() error {
	return sysErr("mlockall", "", unix.Mlockall(unix.MCL_CURRENT|unix.MCL_FUTURE))
}

func munlockall() { _ = unix.Munlockall() }

// holdDMALatency writes 0 to /dev/cpu_dma_latency; the request holds while
// the file stays open.
func holdDMALatency() (func(), error) {
	f, err := os.OpenFile(dmaLatencyPath, os.O_WRONLY, 0)
	if err != nil {
		return nil, pathErr("open", err)
	}
	var zero [4]byte
	binary.LittleEndian.PutUint32(zero[:], 0)
	if _, err := f.Write(zero[:]); err != nil {
		f.Close()
		return nil, pathErr("write", err)
	}
	return func() { f.Close() }, nil
}

func pathErr(call string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		var errno syscall.Errno
		if errors.As(pe.Err, &errno) {
			return &SyscallError{Syscall: call, Path: pe.Path, Err: errno}
		}
	}
	return sysErr(call, dmaLatencyPath, err)
}

func setAffinity(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return sysErr("sched_setaffinity", "", unix.SchedSetaffinity(0, &set))
}

func setFIFO(prio int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
	return sysErr("sched_setattr", "", unix.SchedSetAttr(0, &attr, 0))
}

func setTimerSlack() error {
	return sysErr("prctl", "PR_SET_TIMERSLACK", unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0))
}
