package modbusserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/modbusserver"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

func f64(v float64) *float64 { return &v }

// Tags: 0 level (float32, read), 1 pump (bool coil), 2 setpoint (float64, writable 0..100),
// 3 count (int32 writable), 4 alarm (bool, read-only), 5 speed (uint16 writable, scaled x10)
func testConfig() *configs.Config {
	return &configs.Config{
		Devices: []configs.Device{{Name: "rio1", Tags: []configs.IOTag{
			{Name: "level", Area: configs.AreaInput, Type: tag.Float32},
			{Name: "pump", Area: configs.AreaCoil},
		}}},
		Tags: []configs.Tag{
			{Name: "setpoint", Writable: true, Min: f64(0), Max: f64(100), Initial: configs.Value{Raw: "42.5", Set: true}},
			{Name: "count", Type: tag.Int32, Writable: true, Initial: configs.Value{Raw: "-7", Set: true}},
			{Name: "alarm", Type: tag.Bool},
			{Name: "speed", Type: tag.Float64, Writable: true, Min: f64(0), Max: f64(500)},
		},
	}
}

var testMap = []configs.RegisterMap{
	{Tag: "level", Area: configs.AreaInput, Address: 0, Type: tag.Float32},
	{Tag: "setpoint", Area: configs.AreaHolding, Address: 0, Type: tag.Float32},
	{Tag: "count", Area: configs.AreaHolding, Address: 2, Type: tag.Int32, Order: configs.CDAB},
	{Tag: "alarm", Area: configs.AreaHolding, Address: 4, Type: tag.Uint16},
	{Tag: "speed", Area: configs.AreaHolding, Address: 5, Type: tag.Uint16, Scale: f64(0.1)},
	{Tag: "pump", Area: configs.AreaCoil, Address: 0},
	{Tag: "alarm", Area: configs.AreaDiscrete, Address: 0},
}

type rig struct {
	plant *bridgetest.Plant
	srv   *modbusserver.Server
	addr  string
	port  int
}

func start(t testing.TB, ring int, step bool) *rig {
	p, err := bridgetest.NewPlantFromConfig(testConfig(), ring)
	if err != nil {
		t.Fatal(err)
	}
	p.Set(0, 1.5)
	return serve(t, p, testMap, bridgetest.FreePort(t), step)
}

// serve runs a server of map m over p on port (unit id 1, writes from
// 127.0.0.1) until the test ends; with step the plant runs a cycle every 2ms.
func serve(t testing.TB, p *bridgetest.Plant, m []configs.RegisterMap, port int, step bool) *rig {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv := serveConfig(t, p, modbusserver.Config{Listen: addr, Map: m, UnitID: 1,
		WriteAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, step)
	return &rig{p, srv, addr, port}
}

// serveConfig runs a server of cfg over p until the test ends (a free
// port, the test map and a write timeout of 500ms unless cfg sets them);
// with step the plant runs a cycle every 2ms.
func serveConfig(t testing.TB, p *bridgetest.Plant, cfg modbusserver.Config, step bool) *modbusserver.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(bridgetest.FreePort(t)))
	}
	if cfg.Map == nil {
		cfg.Map = testMap
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 500 * time.Millisecond
	}
	srv, err := modbusserver.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if step {
		p.Start(ctx, 2*time.Millisecond)
	}
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitListening(t, cfg.Listen)
	return srv
}

// pymodbus runs script with pymodbus (an independent peer) and returns
// its output; the test is skipped without pymodbus.
func pymodbus(t testing.TB, script string) string {
	t.Helper()
	if _, err := exec.Command("/usr/bin/python3", "-c", "import pymodbus").CombinedOutput(); err != nil {
		t.Skip("python3-pymodbus not installed (Debian python3-pymodbus): independent check skipped")
	}
	out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("pymodbus: %v\n%s", err, out)
	}
	return string(out)
}

func waitListening(t testing.TB, addr string) {
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("modbus server not listening on %s", addr)
}

func client(t testing.TB, addr string) *modbus.ModbusClient {
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMapErrors(t *testing.T) {
	p, _ := bridgetest.NewPlantFromConfig(testConfig(), 0)
	for _, m := range [][]configs.RegisterMap{
		{{Tag: "nosuch", Area: configs.AreaHolding}},
		{{Tag: "setpoint", Area: configs.AreaCoil}},
		{{Tag: "setpoint", Area: configs.AreaHolding, Address: 0}, {Tag: "count", Area: configs.AreaHolding, Address: 3}},
		{{Tag: "setpoint", Area: configs.AreaHolding, Address: 65534}},
	} {
		if _, err := modbusserver.New(modbusserver.Config{Map: m}, p); !errors.Is(err, modbusserver.ErrMap) {
			t.Errorf("map %v: %v", m, err)
		}
	}
}

func TestReadWriteAndExceptions(t *testing.T) {
	r := start(t, 0, true)
	c := client(t, r.addr)
	c.SetUnitId(1)
	if v, err := c.ReadFloat32(0, modbus.INPUT_REGISTER); err != nil || v != 1.5 {
		t.Fatalf("level %v %v", v, err)
	}
	regs, err := c.ReadRegisters(0, 6, modbus.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	// setpoint 42.5 float32 ABCD; count -7 int32 CDAB
	if regs[0] != 0x422a || regs[1] != 0 || regs[2] != 0xfff9 || regs[3] != 0xffff {
		t.Fatalf("holding %04x", regs)
	}
	if err := c.WriteFloat32(0, 75); err != nil {
		t.Fatalf("write setpoint: %v", err)
	}
	if v := r.plant.Value(2).Value; v != 75 {
		t.Fatalf("setpoint %v", v)
	}
	if v, _ := c.ReadFloat32(0, modbus.HOLDING_REGISTER); v != 75 {
		t.Fatalf("read back %v", v)
	}
	if err := c.WriteRegister(5, 1234); err != nil || r.plant.Value(5).Value != 123.4 {
		t.Fatalf("scaled write: %v %v", err, r.plant.Value(5).Value)
	}
	if err := c.WriteCoil(0, true); err != nil || r.plant.Value(1).Value != 1 {
		t.Fatalf("coil: %v", err)
	}
	for _, c2 := range []struct {
		name string
		do   func() error
		want error
	}{
		{"out of range", func() error { return c.WriteFloat32(0, 500) }, modbus.ErrIllegalDataValue},
		{"read-only tag", func() error { return c.WriteRegister(4, 1) }, modbus.ErrIllegalDataAddress},
		{"unmapped", func() error { return c.WriteRegister(100, 1) }, modbus.ErrIllegalDataAddress},
		{"half a float", func() error { return c.WriteRegister(1, 1) }, modbus.ErrIllegalDataAddress},
		{"unmapped read", func() error { _, err := c.ReadRegisters(4, 4, modbus.HOLDING_REGISTER); return err }, modbus.ErrIllegalDataAddress},
		{"scaled out of range", func() error { return c.WriteRegister(5, 6000) }, modbus.ErrIllegalDataValue},
	} {
		if err := c2.do(); !errors.Is(err, c2.want) {
			t.Errorf("%s: %v, want %v", c2.name, err, c2.want)
		}
	}
	r.plant.SetState(wire.Faulted, "overrun")
	if err := c.WriteFloat32(0, 10); !errors.Is(err, modbus.ErrServerDeviceFailure) {
		t.Errorf("executive faulted: %v", err)
	}
	c.SetUnitId(9)
	if _, err := c.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); err == nil {
		t.Error("answered another unit id")
	}
}

func TestBusyWhenRingFull(t *testing.T) {
	r := start(t, 1, false) // the executive never drains the ring
	c1, c2 := client(t, r.addr), client(t, r.addr)
	c1.SetUnitId(1)
	c2.SetUnitId(1)
	first := make(chan error)
	go func() { first <- c1.WriteFloat32(0, 10) }()
	for r.plant.Queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := c2.WriteFloat32(0, 20); !errors.Is(err, modbus.ErrServerDeviceBusy) {
		t.Fatalf("ring full: %v", err)
	}
	if err := <-first; !errors.Is(err, modbus.ErrServerDeviceBusy) {
		t.Fatalf("no answer from the executive: %v", err)
	}
}

// TestMbpollAndPymodbus reads with mbpoll and writes with pymodbus: peers
// independent of this code.
func TestMbpollAndPymodbus(t *testing.T) {
	mbpoll, err := exec.LookPath("mbpoll")
	if err != nil {
		t.Skip("mbpoll not installed (Debian mbpoll): independent read check skipped")
	}
	r := start(t, 0, true)
	out, err := exec.Command(mbpoll, "-m", "tcp", "-a", "1", "-0", "-r", "0", "-c", "1", "-t", "4:float", "-B", "-1", "-p", strconv.Itoa(r.port), "127.0.0.1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[0]: \t42.5") {
		t.Fatalf("mbpoll: %v\n%s", err, out)
	}
	out, err = exec.Command(mbpoll, "-m", "tcp", "-a", "1", "-0", "-r", "0", "-c", "1", "-t", "1", "-1", "-p", strconv.Itoa(r.port), "127.0.0.1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[0]: \t0") {
		t.Fatalf("mbpoll discrete: %v\n%s", err, out)
	}
	script := fmt.Sprintf(`
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=%d, timeout=3)
assert c.connect()
def code(r):
    return r.exception_code if r.isError() else 0
print("ok", code(c.write_registers(0, [0x4248, 0x0000], slave=1)))   # 50.0
print("ro", code(c.write_register(4, 1, slave=1)))
print("range", code(c.write_registers(0, [0x43fa, 0x0000], slave=1)))  # 500.0
print("unmapped", code(c.write_register(200, 1, slave=1)))
c.close()
`, r.port)
	out = []byte(pymodbus(t, script))
	want := "ok 0\nro 2\nrange 3\nunmapped 2\n"
	if string(out) != want {
		t.Fatalf("pymodbus exception codes:\n%s\nwant\n%s", out, want)
	}
	if v := r.plant.Value(2).Value; v != 50 {
		t.Fatalf("setpoint after pymodbus write %v", v)
	}
	_ = tag.Good
}
