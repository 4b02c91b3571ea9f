package modbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/modbustest"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm/tag"
)

// loadConfig loads a config from YAML with %s replaced by addrs, as
// `mkrt run` would (decoded, defaulted, validated).
func loadConfig(t testing.TB, src string, addrs ...any) *configs.Config {
	t.Helper()
	text := fmt.Sprintf(src, addrs...)
	cfg, err := configs.LoadBytes("safe.yaml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	return cfg
}

func resultOf(t testing.TB, rs []SafeResult, dev string) SafeResult {
	t.Helper()
	for _, r := range rs {
		if r.Device == dev {
			return r
		}
	}
	t.Fatalf("no result for device %s in %+v", dev, rs)
	return SafeResult{}
}

// float32Regs is v as two ABCD registers.
func float32Regs(v float32) []int {
	b := math.Float32bits(v)
	return []int{int(b >> 16), int(b & 0xFFFF)}
}

const tankAndHeater = `metadata: {name: safe}
devices:
  - name: tank
    driver: modbus-tcp
    address: %s
    timeout: 500ms
    watchdog:
      timeout: 1s
      timeout_register: {address: 4096}
      timeout_unit: 100ms
      keepalive_register: {address: 4097}
    tags:
      - {name: level, area: input, address: 0, type: float32}
      - {name: inflow_valve, area: holding, address: 0, type: float32}
      - {name: outflow_valve, area: holding, address: 2, type: float32}
      - {name: pump_running, area: coil, address: 0}
  - name: heater
    driver: modbus-tcp
    address: %s
    tags:
      - {name: power, area: holding, address: 0, type: float32}
      - {name: enable, area: coil, address: 0}
  - name: sensor
    driver: modbus-tcp
    address: 127.0.0.1:1
    tags:
      - {name: temperature, area: input, address: 0, type: float32}
watchdog:
  safe_state: {inflow_valve: 0, outflow_valve: 20, pump_running: false, power: 0, enable: off}
`

// TestDriveSafeSimulators drives the tank's and the heater's outputs to
// their safe values on the simulators, the tank's watchdog having expired
// before (so it refuses writes until re-armed), and checks them with an
// independent client, pymodbus. The sensor has no outputs: no result.
func TestDriveSafeSimulators(t *testing.T) {
	needPymodbus(t)
	tank := startTank(t)
	heater, err := sim.Start(t.Context(), sim.NewHeater(), sim.Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer heater.Close()
	tank.Bank().Update(func(m *sim.Memory) { sim.PutFloat32(m.Holding, 0, 70); m.Coils[0] = true })
	heater.Bank().Update(func(m *sim.Memory) { sim.PutFloat32(m.Holding, 0, 80); m.Coils[0] = true })
	// The tank's own watchdog expires (100 ms): its outputs go safe (the
	// outflow valve stays at 50 %) and it refuses writes.
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + tank.Addr(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRegister(sim.WatchdogTimeoutRegister, 1); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); !tank.Watchdog().CommLost; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("tank watchdog did not expire")
		}
	}
	cfg := loadConfig(t, tankAndHeater, tank.Addr(), heater.Addr())
	start := time.Now()
	rs, err := DriveSafe(t.Context(), cfg, SafeOptions{})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("DriveSafe: %v (%+v)", err, rs)
	}
	if len(rs) != 2 || rs[0].Device != "tank" || rs[1].Device != "heater" {
		t.Fatalf("results %+v, want tank and heater in config order", rs)
	}
	for _, r := range rs {
		for _, o := range r.Outputs {
			if !o.Written || o.Err != nil {
				t.Errorf("%s.%s: written %v, %v", r.Device, o.Tag, o.Written, o.Err)
			}
		}
		t.Logf("%s: %d outputs in %v, %d attempt(s), watchdog %v", r.Device, len(r.Outputs), r.Elapsed, r.Attempts, r.Watchdog)
	}
	t.Logf("DriveSafe took %v", took)
	if st := tank.Watchdog(); st.CommLost || st.Timeout != time.Second || st.KeepAlive != 1 {
		t.Errorf("tank watchdog after DriveSafe %+v: want re-armed with 1s and one keep-alive", st)
	}
	got := pyRead(t, tank.Addr(), "socket", "holding:0:4", "coil:0:1")
	if want := append(float32Regs(0), float32Regs(20)...); fmt.Sprint(got["holding:0:4"]) != fmt.Sprint(want) || got["coil:0:1"][0] != 0 {
		t.Errorf("tank read by pymodbus: %v, want valves %v and the pump off", got, want)
	}
	got = pyRead(t, heater.Addr(), "socket", "holding:0:2", "coil:0:1")
	if fmt.Sprint(got["holding:0:2"]) != "[0 0]" || got["coil:0:1"][0] != 0 {
		t.Errorf("heater read by pymodbus: %v, want power 0 and disabled", got)
	}
}

// TestDriveSafeCoalescesLikeTheScanner checks the requests on a recorder:
// only safe-state outputs are written, back-to-back ones in one request,
// with their types, scale and bits, as the Scanner writes them.
func TestDriveSafeCoalescesLikeTheScanner(t *testing.T) {
	rec, addr := serveBank(t, 32)
	rec.Update(func(m *sim.Memory) { m.Holding[14] = 0x0101 })
	cfg := loadConfig(t, `metadata: {name: safe}
devices:
  - name: io
    driver: modbus-tcp
    address: %s
    tags:
      - {name: f, area: holding, address: 10, type: float32}
      - {name: keep, area: holding, address: 12}
      - {name: scaled, area: holding, address: 13, type: int16, scale: 0.1}
      - {name: flag, area: holding, address: 14, bit: 3}
      - {name: c0, area: coil, address: 0}
      - {name: c1, area: coil, address: 1}
      - {name: c2, area: coil, address: 2}
      - {name: in, area: input, address: 0}
watchdog:
  safe_state: {f: 12.5, scaled: -5, flag: true, c0: true, c1: false}
`, addr)
	rs, err := DriveSafe(t.Context(), cfg, SafeOptions{})
	if err != nil {
		t.Fatalf("DriveSafe: %v", err)
	}
	// Register blocks, coil blocks, then bits of registers: FC22 is
	// answered "illegal function" by the simulator's server, so the bit
	// falls back to read-modify-write, as in the Scanner.
	want := []string{"write holding 10+2", "write holding 13+1", "write coil 0+2", "read holding 14+1", "write holding 14+1"}
	if got := rec.take(); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("requests\n got %v\nwant %v", got, want)
	}
	m := rec.Snapshot()
	if m.Holding[10] != 0x4148 || m.Holding[11] != 0 || m.Holding[12] != 0 || m.Holding[13] != uint16(0xFFCE) || m.Holding[14] != 0x0109 ||
		!m.Coils[0] || m.Coils[1] || m.Coils[2] {
		t.Errorf("registers %x coils %v", m.Holding[10:15], m.Coils[:3])
	}
	if r := rs[0]; len(r.Outputs) != 5 || r.Outputs[0].Tag != "f" || r.Outputs[0].Value != 12.5 || r.Outputs[2].Value != 1 || r.Err != nil {
		t.Errorf("result %+v", r)
	}
}

// TestDriveSafeDeadDevices writes a live device beside one that refuses
// connections and one that accepts but never answers: the live one is
// written at once, the dead ones cost their timeout and retries and are
// reported, classified.
func TestDriveSafeDeadDevices(t *testing.T) {
	tank := startTank(t)
	silent, err := modbustest.NewRawServer(func([]byte) modbustest.Reply { return modbustest.Reply{} })
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	refused := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := loadConfig(t, `metadata: {name: safe}
devices:
  - name: silent
    driver: modbus-tcp
    address: %s
    timeout: 400ms
    tags: [{name: s, area: coil, address: 0}]
  - name: refused
    driver: modbus-tcp
    address: %s
    timeout: 400ms
    retries: 2
    tags: [{name: r, area: coil, address: 0}]
  - name: tank
    driver: modbus-tcp
    address: %s
    tags: [{name: pump_running, area: coil, address: 0}]
watchdog:
  safe_state: {s: false, r: false, pump_running: false}
`, silent.Addr(), refused, tank.Addr())
	tank.Bank().Update(func(m *sim.Memory) { m.Coils[0] = true })
	start := time.Now()
	rs, err := DriveSafe(t.Context(), cfg, SafeOptions{})
	took := time.Since(start)
	if !errors.Is(err, ErrNotSafe) || !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrConnect) {
		t.Fatalf("err = %v, want ErrNotSafe with a timeout and a refused connect", err)
	}
	live, s, r := resultOf(t, rs, "tank"), resultOf(t, rs, "silent"), resultOf(t, rs, "refused")
	if live.Err != nil || !live.Outputs[0].Written || tank.Bank().Snapshot().Coils[0] {
		t.Errorf("live device: %+v", live)
	}
	if !errors.Is(s.Err, ErrTimeout) || s.Attempts != 2 || s.Outputs[0].Written || !errors.Is(s.Outputs[0].Err, ErrTimeout) {
		t.Errorf("silent device: %+v, want a timeout after 2 attempts", s)
	}
	if !errors.Is(r.Err, ErrConnect) || r.Attempts != 3 {
		t.Errorf("refused device: %+v, want a connect error after 3 attempts", r)
	}
	t.Logf("DriveSafe %v: live device %v, silent %v (%v), refused %v (%v)", took.Round(time.Millisecond),
		live.Elapsed.Round(time.Microsecond), s.Elapsed.Round(time.Millisecond), s.Err, r.Elapsed.Round(time.Millisecond), r.Err)
	// The live device is not held by the dead ones: written well within one
	// of their timeouts. The whole call is bounded by the silent device's
	// two attempts of one 400 ms request each.
	if live.Elapsed >= 400*time.Millisecond {
		t.Errorf("live device took %v, as long as a dead device's timeout", live.Elapsed)
	}
	if took > 2*400*time.Millisecond+time.Second {
		t.Errorf("DriveSafe took %v, beyond 2 x 400ms (+1s slack)", took)
	}
	// A deadline bounds it too.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = DriveSafe(ctx, cfg, SafeOptions{})
	if took := time.Since(start); !errors.Is(err, ErrNotSafe) || took > 100*time.Millisecond+500*time.Millisecond {
		t.Errorf("with a 100ms deadline: %v after %v", err, took)
	}
}

// TestDriveSafeRTUOverTCP writes RTU frames over TCP to pymodbus's RTU
// server and reads the result back with pymodbus's RTU client.
func TestDriveSafeRTUOverTCP(t *testing.T) {
	needPymodbus(t)
	port := freePort(t)
	startPymodbus(t, "", "127.0.0.1", port, "rtu", []uint16{1, 2, 3, 4, 5, 6})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := loadConfig(t, `metadata: {name: safe}
devices:
  - name: rtu
    driver: modbus-rtu-over-tcp
    address: %s
    unit_id: 3
    tags:
      - {name: speed, area: holding, address: 2, type: float32, order: CDAB}
      - {name: mode, area: holding, address: 4, type: uint16}
      - {name: run, area: coil, address: 7}
watchdog:
  safe_state: {speed: -2.5, mode: 9, run: true}
`, addr)
	rs, err := DriveSafe(t.Context(), cfg, SafeOptions{})
	if err != nil {
		t.Fatalf("DriveSafe: %v (%+v)", err, rs)
	}
	got := pyRead(t, addr, "rtu", "holding:0:6", "coil:7:1")
	f := float32Regs(-2.5)
	if want := []int{1, 2, f[1], f[0], 9, 6}; fmt.Sprint(got["holding:0:6"]) != fmt.Sprint(want) || got["coil:7:1"][0] != 1 {
		t.Errorf("read back by pymodbus over RTU: %v, want holding %v and coil 7 on", got, want)
	}
	t.Logf("RTU over TCP: %d outputs in %v", len(rs[0].Outputs), rs[0].Elapsed)
}

// TestDriveSafeHostName refuses a host name without a Dial (resolving it
// would open sockets off the calling thread) and uses a given Dial.
func TestDriveSafeHostName(t *testing.T) {
	tank := startTank(t)
	_, port, _ := net.SplitHostPort(tank.Addr())
	cfg := loadConfig(t, `metadata: {name: safe}
devices:
  - name: tank
    driver: modbus-tcp
    address: localhost:%s
    tags: [{name: pump_running, area: coil, address: 0}]
watchdog:
  safe_state: {pump_running: false}
`, port)
	rs, err := DriveSafe(t.Context(), cfg, SafeOptions{})
	if !errors.Is(err, ErrConfig) || rs[0].Attempts != 1 {
		t.Errorf("host name without Dial: %v, attempts %d; want ErrConfig, no retry", err, rs[0].Attempts)
	}
	dials := 0
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tank.Bank().Update(func(m *sim.Memory) { m.Coils[0] = true })
	if _, err := DriveSafe(t.Context(), cfg, SafeOptions{Dial: dial}); err != nil || dials != 1 || tank.Bank().Snapshot().Coils[0] {
		t.Errorf("with a Dial: %v after %d dials", err, dials)
	}
}

// TestDriveSafeSerial writes over an RTU serial line to libmodbus's RTU
// server (a socat pty pair stands in for the RS-485 adapter) and reads the
// registers back over the same line.
func TestDriveSafeSerial(t *testing.T) {
	tty := rtuSerialServer(t)
	cfg := loadConfig(t, `metadata: {name: safe}
devices:
  - name: rtu
    driver: modbus-rtu
    address: %s
    timeout: 1s
    serial: {baud_rate: 19200, parity: E}
    tags:
      - {name: out, area: holding, address: 40, type: int32, order: DCBA}
      - {name: coil, area: coil, address: 3}
watchdog:
  safe_state: {out: -123456, coil: true}
`, tty)
	rs, err := DriveSafe(t.Context(), cfg, SafeOptions{})
	if err != nil {
		t.Fatalf("DriveSafe: %v (%+v)", err, rs)
	}
	t.Logf("serial RTU: %d outputs in %v", len(rs[0].Outputs), rs[0].Elapsed)
	dev := cfg.Devices[0]
	dev.Poll = configs.Duration(20 * time.Millisecond)
	for i := range dev.Tags {
		dev.Tags[i].Access = tag.Read
	}
	tab := newTable(t, dev)
	s := startScanner(t, dev, tab)
	waitFor(t, s, tab, "read back", allGood(tab, "out", "coil"))
	if v, c := sample(tab, "out").Value, sample(tab, "coil").Value; v != -123456 || c != 1 {
		t.Errorf("read back %v and coil %v, want -123456 and on", v, c)
	}
}
