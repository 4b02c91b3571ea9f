//go:build linux

package pid1

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/rt"
)

// WatchdogPath is the kernel's first watchdog device.
const WatchdogPath = "/dev/watchdog"

// DevWatchdog is a Linux watchdog device opened with OpenWatchdog.
type DevWatchdog struct {
	path    string
	fd      int
	Timeout time.Duration // as the driver set it
}

// OpenWatchdog opens (and so starts) the watchdog device at path and sets
// its timeout, rounded up to whole seconds.
func OpenWatchdog(path string, timeout time.Duration) (*DevWatchdog, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pid1: open %s: %w (is the watchdog driver, e.g. i6300esb, in the image?)", path, err)
	}
	secs := int((timeout + time.Second - 1) / time.Second)
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, secs); err != nil {
		w := &DevWatchdog{path: path, fd: fd}
		_ = w.Disarm()
		return nil, fmt.Errorf("pid1: ioctl(%s, WDIOC_SETTIMEOUT, %d): %w", path, secs, err)
	}
	got, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT)
	if err != nil {
		got = secs
	}
	return &DevWatchdog{path: path, fd: fd, Timeout: time.Duration(got) * time.Second}, nil
}

// Keepalive restarts the countdown (WDIOC_KEEPALIVE).
func (w *DevWatchdog) Keepalive() error {
	if err := unix.IoctlWatchdogKeepalive(w.fd); err != nil {
		return fmt.Errorf("pid1: ioctl(%s, WDIOC_KEEPALIVE): %w", w.path, err)
	}
	return nil
}

// Disarm writes the magic character 'V' and closes the device, which
// stops the watchdog (drivers without nowayout).
func (w *DevWatchdog) Disarm() error {
	_, werr := unix.Write(w.fd, []byte("V"))
	cerr := w.Close()
	if werr != nil {
		return fmt.Errorf("pid1: write(%s, \"V\"): %w", w.path, werr)
	}
	return cerr
}

// Close closes the device without the magic character: the watchdog keeps
// counting.
func (w *DevWatchdog) Close() error {
	if err := unix.Close(w.fd); err != nil {
		return fmt.Errorf("pid1: close(%s): %w", w.path, err)
	}
	return nil
}

// InjectFault makes the kernel fail as fault (one of TestFaults) says, for
// the watchdog tests; FaultHang and FaultPanic do not return.
func InjectFault(fault string) error {
	switch fault {
	case FaultPanic:
		if err := os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0); err != nil {
			return fmt.Errorf("pid1: write /proc/sysrq-trigger: %w", err)
		}
		return fmt.Errorf("pid1: the kernel did not crash on sysrq c")
	case FaultHang, FaultStall:
	default:
		return fmt.Errorf("pid1: unknown mkrt.%s=%q (one of %s)", ParamTest, fault, strings.Join(TestFaults, ", "))
	}
	// Real-time throttling would leave 5% of each second to the rest.
	if err := os.WriteFile("/proc/sys/kernel/sched_rt_runtime_us", []byte("-1"), 0); err != nil {
		return fmt.Errorf("pid1: write /proc/sys/kernel/sched_rt_runtime_us: %w", err)
	}
	online, err := cpuFile("/sys/devices/system/cpu/online")
	if err != nil {
		return err
	}
	isolated, _ := cpuFile("/sys/devices/system/cpu/isolated")
	var cpus []int
	for _, c := range online {
		if slices.Contains(isolated, c) {
			cpus = append(cpus, c)
		}
	}
	if fault == FaultHang {
		// The CPU this goroutine may run on last: once it spins, nothing
		// else does.
		for _, c := range online {
			if !slices.Contains(isolated, c) {
				cpus = append(cpus, c)
			}
		}
	}
	if len(cpus) == 0 {
		return fmt.Errorf("pid1: no CPU to stall (no isolated CPUs among %s)", configs.CPUList(online))
	}
	for _, c := range cpus {
		started := make(chan error, 1)
		go spin(c, started)
		if err := <-started; err != nil {
			return err
		}
	}
	return nil
}

// spinning stays zero: the spinners' loop condition, which no compiler
// can prove constant.
var spinning atomic.Uint32

// spin takes cpu at SCHED_FIFO 99 for good.
func spin(cpu int, started chan<- error) {
	st := rt.Thread{Priority: 99, CPU: cpu, StackBytes: 4 << 10}.Setup()
	if st.Degraded() {
		started <- fmt.Errorf("pid1: spinner on CPU %d: %s", cpu, strings.Join(st.Reasons(), "; "))
		return
	}
	started <- nil
	for spinning.Load() == 0 {
	}
}

func cpuFile(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pid1: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, nil
	}
	cpus, err := configs.ParseCPUList(s)
	if err != nil {
		return nil, fmt.Errorf("pid1: %s: %w", path, err)
	}
	return cpus, nil
}
