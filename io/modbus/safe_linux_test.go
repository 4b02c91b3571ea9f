package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs f on a goroutine locked to an OS thread that entered the
// named network namespace, as the supervisor enters the partition's. The
// thread is not given back to the runtime (it exits with the goroutine).
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(filepath.Join("/var/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns(%s): %w", ns, err)
			return
		}
		f()
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("netns goroutine did not finish in 60 s")
	}
}

// TestDriveSafeInNetns runs DriveSafe on a thread inside a network
// namespace whose devices listen on the namespace's own loopback, out of
// the host's reach: it reaches them only if every socket is created on the
// calling thread. Two devices (Modbus TCP and RTU over TCP) connect
// concurrently; a Dial of the caller's is called on the calling thread.
// From the host's namespace the same config reaches nothing.
func TestDriveSafeInNetns(t *testing.T) {
	needPymodbus(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace and enter it (setns)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs ip (iproute2)")
	}
	ns := fmt.Sprintf("mkrt-safe-%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	tcpPort, rtuPort := freePort(t), freePort(t) // free on the host: a host dial is refused
	startInNetns := func(port int, framer string) {
		script, _ := filepath.Abs("testdata/pyserver.py")
		cmd := exec.Command("ip", "netns", "exec", ns, systemPython, script, "127.0.0.1", fmt.Sprint(port), framer, "1,2,3,4")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	startInNetns(tcpPort, "socket")
	startInNetns(rtuPort, "rtu")
	inNetns(t, ns, func() {
		for _, p := range []int{tcpPort, rtuPort} {
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 200*time.Millisecond)
				if err == nil {
					c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("pymodbus in %s on port %d did not come up: %v", ns, p, err)
					return
				}
			}
		}
	})
	if t.Failed() {
		return
	}
	cfg := loadConfig(t, `metadata: {name: safe}
devices:
  - name: tcp
    driver: modbus-tcp
    address: 127.0.0.1:%d
    timeout: 1s
    tags:
      - {name: valve, area: holding, address: 0, type: float32}
      - {name: pump, area: coil, address: 0}
  - name: rtu
    driver: modbus-rtu-over-tcp
    address: 127.0.0.1:%d
    timeout: 1s
    tags:
      - {name: heat, area: holding, address: 2}
watchdog:
  safe_state: {valve: 7.5, pump: true, heat: 42}
`, tcpPort, rtuPort)

	// From the host's namespace: nothing listens there.
	if _, err := DriveSafe(t.Context(), cfg, SafeOptions{}); !errors.Is(err, ErrConnect) {
		t.Fatalf("DriveSafe from the host namespace: %v, want connection refused", err)
	}
	var rs []SafeResult
	var err error
	var took time.Duration
	inNetns(t, ns, func() {
		start := time.Now()
		rs, err = DriveSafe(context.Background(), cfg, SafeOptions{})
		took = time.Since(start)
	})
	if err != nil {
		t.Fatalf("DriveSafe inside %s: %v (%+v)", ns, err, rs)
	}
	t.Logf("DriveSafe inside %s: %v (tcp %v, rtu-over-tcp %v)", ns, took, rs[0].Elapsed, rs[1].Elapsed)
	read := func(port int, framer string, specs ...string) string {
		script, _ := filepath.Abs("testdata/pyclient.py")
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, systemPython, script, "127.0.0.1", fmt.Sprint(port), framer, "read"}, specs...)...).Output()
		if err != nil {
			t.Fatalf("pymodbus read in %s: %v", ns, err)
		}
		return strings.TrimSpace(string(out))
	}
	f := float32Regs(7.5)
	if got, want := read(tcpPort, "socket", "holding:0:2", "coil:0:1"), fmt.Sprintf(`{"holding:0:2": [%d, %d], "coil:0:1": [1]}`, f[0], f[1]); got != want {
		t.Errorf("tcp device read by pymodbus: %s, want %s", got, want)
	}
	if got, want := read(rtuPort, "rtu", "holding:2:1"), `{"holding:2:1": [42]}`; got != want {
		t.Errorf("rtu device read by pymodbus: %s, want %s", got, want)
	}

	// A Dial of the caller's runs on the calling thread (and so in its
	// namespace) too.
	inNetns(t, ns, func() {
		tid, wrong := unix.Gettid(), 0
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			if unix.Gettid() != tid {
				wrong++
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		if _, err := DriveSafe(context.Background(), cfg, SafeOptions{Dial: dial}); err != nil || wrong != 0 {
			t.Errorf("with a Dial inside %s: %v, %d dials off the calling thread", ns, err, wrong)
		}
	})
}
