package modbus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm/tag"
)

// pyClient runs testdata/pyclient.py (pymodbus) against addr.
func pyClient(t testing.TB, addr, framer, mode string, args ...string) *exec.Cmd {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	script, _ := filepath.Abs("testdata/pyclient.py")
	cmd := exec.Command(systemPython, append([]string{script, host, port, framer, mode}, args...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// pyRead reads the specs (AREA:ADDR:COUNT) once with pymodbus.
func pyRead(t testing.TB, addr, framer string, specs ...string) map[string][]int {
	t.Helper()
	cmd := pyClient(t, addr, framer, "read", specs...)
	done := make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill(); close(done) })
	out, err := cmd.Output()
	if !timer.Stop() {
		<-done
	}
	if err != nil {
		t.Fatalf("pymodbus read %v: %v: %s", specs, err, out)
	}
	var got map[string][]int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("pymodbus read: %v: %s", err, out)
	}
	return got
}

// tankDevice is the tank simulator's outputs and a few inputs, with the
// simulator's watchdog (timeout in 100 ms steps at holding 4096,
// keep-alive at 4097) when timeout is non-zero.
func tankDevice(addr string, timeout, every time.Duration) configs.Device {
	dev := tcpDevice("tank", addr,
		configs.IOTag{Name: "level", Area: configs.AreaInput, Address: 0, Type: tag.Float32},
		configs.IOTag{Name: "inflow_valve", Area: configs.AreaHolding, Address: 0, Type: tag.Float32, Min: ptr(0.0), Max: ptr(100.0)},
		configs.IOTag{Name: "outflow_valve", Area: configs.AreaHolding, Address: 2, Type: tag.Float32, Min: ptr(0.0), Max: ptr(100.0)},
		configs.IOTag{Name: "pump_running", Area: configs.AreaCoil, Address: 0},
		configs.IOTag{Name: "comm_lost", Area: configs.AreaDiscrete, Address: sim.WatchdogCommLost})
	if timeout > 0 {
		dev.Watchdog = configs.DeviceWatchdog{Timeout: configs.Duration(timeout), TimeoutUnit: configs.Duration(sim.WatchdogUnit),
			TimeoutRegister:   &configs.WatchdogRegister{Address: sim.WatchdogTimeoutRegister},
			KeepAliveRegister: &configs.WatchdogRegister{Address: sim.WatchdogKeepAliveRegister}, KeepAliveEvery: configs.Duration(every)}
	}
	return dev
}

// setOutputs hands the named values to s as the cycle would.
func setOutputs(s *Scanner, tab *tag.Table, vals map[string]float64) {
	for n, v := range vals {
		id, _ := tab.Lookup(n)
		tab.Samples[id] = tag.Sample{Value: v, Quality: tag.Good}
	}
	s.SetOutputs(tab.Samples, tab.Text)
}

func startTank(t testing.TB) *sim.Server {
	t.Helper()
	srv, err := sim.Start(context.Background(), sim.NewTank(), sim.Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestScannerFeedsDeviceWatchdog polls the tank far slower than its
// watchdog's timeout: the Scanner's keep-alives, not its polls, keep the
// simulator from losing communication. Stopping the Scanner lets it expire.
func TestScannerFeedsDeviceWatchdog(t *testing.T) {
	srv := startTank(t)
	dev := tankDevice(srv.Addr(), 300*time.Millisecond, 60*time.Millisecond)
	dev.Poll = configs.Duration(time.Second)
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	waitFor(t, s, tab, "tank good", allGood(tab, "level", "comm_lost"))
	if st := srv.Watchdog(); st.Timeout != 300*time.Millisecond {
		t.Fatalf("timeout register not written at connect: %+v", st)
	}
	time.Sleep(time.Second) // three timeouts, one poll
	st, stats := srv.Watchdog(), s.Stats()
	if st.CommLost || st.Trips != 0 || stats.KeepAlives < 10 || uint64(st.KeepAlive) != stats.KeepAlives {
		t.Fatalf("fed by keep-alives only: simulator %+v, %d keep-alives, %d polls", st, stats.KeepAlives, stats.Polls)
	}
	t.Logf("1 s at poll 1 s: %d polls, %d keep-alives, simulator %+v", stats.Polls, stats.KeepAlives, st)
	stopped := time.Now()
	s.Stop()
	for !srv.Watchdog().CommLost {
		if time.Since(stopped) > 5*time.Second {
			t.Fatal("the watchdog did not expire within 5 s of the Scanner stopping")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("comm lost %v after Stop (timeout 300ms, keep-alive every 60ms)", time.Since(stopped).Round(time.Millisecond))
}

// TestDeviceWatchdogRealPeer is the plant engineer's question, answered
// against a real peer: the tank simulator runs with the Scanner feeding
// its watchdog (timeout 500 ms) and driving the inflow valve and the pump;
// the Scanner stops as if the executive died; pymodbus, an independent
// client, watches the outputs go safe.
func TestDeviceWatchdogRealPeer(t *testing.T) {
	needPymodbus(t)
	const timeout, every, clientPoll = 500 * time.Millisecond, 100 * time.Millisecond, 10 * time.Millisecond
	srv := startTank(t)
	dev := tankDevice(srv.Addr(), timeout, every)
	dev.Poll = configs.Duration(20 * time.Millisecond)
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	waitFor(t, s, tab, "tank good", allGood(tab, "level"))
	setOutputs(s, tab, map[string]float64{"inflow_valve": 60, "pump_running": 1})
	waitFor(t, s, tab, "outputs on the tank", func() bool {
		return sample(tab, "inflow_valve").Value == 60 && sample(tab, "pump_running").Value == 1
	})
	// Safe: inflow valve 0.0 (float32 0 is 0x0000 0x0000), pump off, comm lost.
	watch := pyClient(t, srv.Addr(), "socket", "watch", fmt.Sprint(clientPoll.Milliseconds()),
		"holding:0:2=0,0", "coil:0:1=0", fmt.Sprintf("discrete:%d:1=1", sim.WatchdogCommLost), "holding:2:2")
	stdin, _ := watch.StdinPipe()
	stdout, _ := watch.StdoutPipe()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Process.Kill(); _ = watch.Wait() }()
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("pymodbus client: no answer in 20 s")
		}
		return ""
	}
	if l := next(); !strings.HasPrefix(l, "ready") || strings.Contains(l, `"coil:0:1": [0]`) {
		t.Fatalf("pymodbus before the stop: %s", l)
	}
	lastKeepAlive := s.Stats().KeepAlives
	stopped := time.Now()
	s.Stop() // the executive died
	fmt.Fprintln(stdin)
	l := next()
	seen := time.Since(stopped)
	var ms float64
	var polls int
	if _, err := fmt.Sscanf(l, "safe %f %d", &ms, &polls); err != nil {
		t.Fatalf("pymodbus: %s", l)
	}
	t.Logf("outputs safe seen by pymodbus %.1f ms after the stop (%v by this process; timeout %v, keep-alive every %v, client poll %v, %d reads, %d keep-alives before): %s",
		ms, seen.Round(time.Millisecond), timeout, every, clientPoll, polls, lastKeepAlive, l)
	if !strings.Contains(l, `"holding:2:2": [16968, 0]`) { // outflow valve 50 % untouched
		t.Errorf("outflow valve moved: %s", l)
	}
	// The device expires one timeout after the last keep-alive, which came
	// at most one keep-alive period before the stop; pymodbus sees it at its
	// next read. 50 ms and 250 ms of slack for a loaded 2-core machine.
	if lo, hi := timeout-every-50*time.Millisecond, timeout+clientPoll+250*time.Millisecond; seen < lo || seen > hi {
		t.Errorf("outputs safe %v after the stop, want within [%v, %v]", seen, lo, hi)
	}
	// A new Scanner (the restarted executive) resumes: comm lost clears, the
	// outputs stay safe until the cycle writes them.
	s2 := startScanner(t, dev, tab)
	waitFor(t, s2, tab, "comm restored", func() bool {
		return sample(tab, "comm_lost").Quality == tag.Good && sample(tab, "comm_lost").Value == 0
	})
	if v, p := sample(tab, "inflow_valve").Value, sample(tab, "pump_running").Value; v != 0 || p != 0 {
		t.Errorf("after the restart: inflow valve %v, pump %v; want them still safe", v, p)
	}
}

// kaRecorder records the values written to holding 4097 and coil 9.
type kaRecorder struct {
	*sim.Bank
	mu    sync.Mutex
	regs  []uint16
	coils []bool
}

func (r *kaRecorder) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite && req.Addr == 4097 {
		r.mu.Lock()
		r.regs = append(r.regs, req.Args...)
		r.mu.Unlock()
		return nil, nil
	}
	if req.IsWrite && req.Addr == 4096 {
		return nil, nil
	}
	return r.Bank.HandleHoldingRegisters(req)
}

func (r *kaRecorder) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	if req.IsWrite && req.Addr == 9 {
		r.mu.Lock()
		r.coils = append(r.coils, req.Args...)
		r.mu.Unlock()
	}
	return r.Bank.HandleCoils(req)
}

// TestKeepAliveValues checks the keep-alive sequences: an incrementing
// register, a toggling register and a coil.
func TestKeepAliveValues(t *testing.T) {
	for _, c := range []struct {
		name string
		reg  configs.WatchdogRegister
		mode configs.KeepAliveValue
		want func(r *kaRecorder) bool
	}{
		{"increment", configs.WatchdogRegister{Address: 4097}, "", func(r *kaRecorder) bool {
			return len(r.regs) >= 5 && r.regs[0] == 1 && r.regs[4] == 5
		}},
		{"toggle", configs.WatchdogRegister{Address: 4097}, configs.KeepAliveToggle, func(r *kaRecorder) bool {
			return len(r.regs) >= 4 && r.regs[0] == 1 && r.regs[1] == 0 && r.regs[2] == 1 && r.regs[3] == 0
		}},
		{"coil", configs.WatchdogRegister{Area: configs.AreaCoil, Address: 9}, "", func(r *kaRecorder) bool {
			return len(r.coils) >= 4 && r.coils[0] && !r.coils[1] && r.coils[2] && !r.coils[3]
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &kaRecorder{Bank: sim.NewBank(16, 16, 16, 16)}
			srv, err := sim.Serve(t.Context(), rec, sim.Config{Listen: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			dev := tcpDevice("ka", srv.Addr(), configs.IOTag{Name: "v", Area: configs.AreaInput, Address: 0})
			reg := c.reg
			dev.Watchdog = configs.DeviceWatchdog{Timeout: configs.Duration(time.Second), KeepAliveRegister: &reg,
				KeepAliveEvery: configs.Duration(10 * time.Millisecond), KeepAliveValue: c.mode}
			tab := newTable(t, dev)
			s := startScanner(t, dev, tab)
			waitFor(t, s, tab, "keep-alives", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return c.want(rec)
			})
		})
	}
}

// TestWatchdogWriteRefused polls a device without watchdog registers: the
// refusal (exception 2) is reported like a refused output write, and the
// device is polled as before.
func TestWatchdogWriteRefused(t *testing.T) {
	rec, addr := serveBank(t, 8)
	dev := tcpDevice("plain", addr, configs.IOTag{Name: "v", Area: configs.AreaInput, Address: 0})
	dev.Watchdog = configs.DeviceWatchdog{Timeout: configs.Duration(time.Second),
		TimeoutRegister:   &configs.WatchdogRegister{Address: 4096},
		KeepAliveRegister: &configs.WatchdogRegister{Address: 4097}, KeepAliveEvery: configs.Duration(20 * time.Millisecond)}
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	rec.Update(func(m *sim.Memory) { m.Input[0] = 7 })
	waitFor(t, s, tab, "polled despite the refusals", func() bool {
		return sample(tab, "v").Value == 7 && s.Stats().Polls > 10 && s.Stats().Errors > 2
	})
	var ex *ExceptionError
	if st := s.Stats(); !errors.As(st.LastError, &ex) || ex.Code != 2 || st.KeepAlives != 0 || st.Reconnects != 0 {
		t.Errorf("stats %+v: want exception 2 recorded, no keep-alive counted, no reconnect", st)
	}
	if q := sample(tab, "v").Quality; q != tag.Good {
		t.Errorf("quality %v", q)
	}
}

func TestWatchdogConfigErrors(t *testing.T) {
	dev := tcpDevice("w", "127.0.0.1:1", configs.IOTag{Name: "v", Area: configs.AreaInput, Address: 0})
	for name, wd := range map[string]configs.DeviceWatchdog{
		"steps":      {Timeout: configs.Duration(250 * time.Millisecond), TimeoutUnit: configs.Duration(100 * time.Millisecond), TimeoutRegister: &configs.WatchdogRegister{}},
		"input area": {Timeout: configs.Duration(time.Second), TimeoutRegister: &configs.WatchdogRegister{Area: configs.AreaInput}},
		"slow":       {Timeout: configs.Duration(time.Second), KeepAliveRegister: &configs.WatchdogRegister{}, KeepAliveEvery: configs.Duration(2 * time.Second)},
	} {
		dev.Watchdog = wd
		if _, err := NewScanner(dev, newTable(t, dev)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
