package rt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

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
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Flags: schedResetOnFork, Priority: uint32(prio)}
	return sysErr("sched_setattr", "", unix.SchedSetAttr(0, &attr, 0))
}

func setTimerSlack() error {
	return sysErr("prctl", "PR_SET_TIMERSLACK", unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0))
}

// setPriorityRaw is setFIFO as a raw system call: the relay's threads call
// it at a hand-over, where a pass through the runtime's syscall path could
// lose the thread's P.
func setPriorityRaw(prio int) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Flags: schedResetOnFork, Priority: uint32(prio)}
	_, _, errno := syscall.RawSyscall(unix.SYS_SCHED_SETATTR, 0, uintptr(unsafe.Pointer(&attr)), 0)
	if errno != 0 {
		return &SyscallError{Syscall: "sched_setattr", Err: errno}
	}
	return nil
}

func setAffinityRaw(m *CPUMask) error {
	_, _, errno := syscall.RawSyscall(unix.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(*m), uintptr(unsafe.Pointer(m)))
	if errno != 0 {
		return &SyscallError{Syscall: "sched_setaffinity", Err: errno}
	}
	return nil
}

func threadMask() (CPUMask, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return CPUMask{}, sysErr("sched_getaffinity", "", err)
	}
	var m CPUMask
	for c := 0; c < len(m)*64; c++ {
		if set.IsSet(c) {
			m[c/64] |= 1 << (c % 64)
		}
	}
	return m, nil
}

func yieldCPU() { _, _, _ = syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// schedResetOnFork keeps threads the Go runtime clones from a real-time
// thread from inheriting SCHED_FIFO (SCHED_FLAG_RESET_ON_FORK).
const schedResetOnFork = 0x01

// Tid is the calling thread's id.
func Tid() int { return unix.Gettid() }

// housekeep pins every thread of the process except keep to the online
// CPUs not in exclude.
// The returned function gives every thread the affinity the caller had.
func housekeep(exclude []int, keep []int) (string, func(), error) {
	var set, orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "", nil, sysErr("sched_getaffinity", "", err)
	}
	orig = set
	for _, c := range exclude {
		set.Clear(c)
	}
	if set.Count() == 0 {
		return "", nil, errNoHousekeeping
	}
	n, err := setAllThreads(&set, keep)
	restore := func() { _, _ = setAllThreads(&orig, keep) }
	if err != nil {
		restore()
		return "", nil, err
	}
	return fmt.Sprintf("%d general threads on %s", n, cpuList(&set)), restore, nil
}

// setAllThreads sets the affinity of every thread but keep.
func setAllThreads(set *unix.CPUSet, keep []int) (int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, pathErr("readdir", err)
	}
	n := 0
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(keep, tid) {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return n, sysErr("sched_setaffinity", "tid "+e.Name(), err)
		}
		n++
	}
	return n, nil
}

func cpuList(set *unix.CPUSet) string {
	var cpus []string
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, strconv.Itoa(c))
		}
	}
	return "CPUs " + strings.Join(cpus, ",")
}
