package modbusserver_test

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/modbusserver"
)

// run serves cfg over a fake plant of the test config (see serveConfig).
func run(t testing.TB, cfg modbusserver.Config, step bool) (*bridgetest.Plant, string) {
	t.Helper()
	p, err := bridgetest.NewPlantFromConfig(testConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == "" {
		cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(bridgetest.FreePort(t)))
	}
	serveConfig(t, p, cfg, step)
	return p, cfg.Listen
}

// ask sends one raw MBAP request on c and returns the response PDU.
func ask(t testing.TB, c net.Conn, frame []byte) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(frame); err != nil {
		t.Fatalf("send %x: %v", frame, err)
	}
	var h [7]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("answer to %x: %v (connection closed instead of an answer)", frame, err)
	}
	b := make([]byte, int(binary.BigEndian.Uint16(h[4:]))-1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("answer to %x: %v", frame, err)
	}
	return b
}

func dial(t testing.TB, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPlaintextWritesNeedTheAllowList: a plaintext client outside
// write_allow reads but cannot write (exception 1), and the refusal is
// recorded with the peer's address.
func TestPlaintextWritesNeedTheAllowList(t *testing.T) {
	rec := &bridgetest.Refusals{}
	p, addr := run(t, modbusserver.Config{UnitID: 1, Refuser: rec, WriteAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, true)
	c := client(t, addr)
	c.SetUnitId(1)
	if v, err := c.ReadFloat32(0, modbus.HOLDING_REGISTER); err != nil || v != 42.5 {
		t.Fatalf("read %v %v", v, err)
	}
	if err := c.WriteFloat32(0, 75); !errors.Is(err, modbus.ErrIllegalFunction) {
		t.Fatalf("write from outside write_allow: %v, want illegal function", err)
	}
	if err := c.WriteCoil(0, true); !errors.Is(err, modbus.ErrIllegalFunction) {
		t.Fatalf("coil write from outside write_allow: %v, want illegal function", err)
	}
	if v := p.Value(2).Value; v != 42.5 {
		t.Fatalf("setpoint written to %v by a client outside write_allow", v)
	}
	rs := rec.All()
	if len(rs) != 2 {
		t.Fatalf("refusals %+v, want 2", rs)
	}
	if r := rs[0]; r.Principal.Protocol != "modbus" || !strings.HasPrefix(r.Principal.Peer, "127.0.0.1:") || r.Tag != "setpoint" || !strings.Contains(r.Reason, "write_allow") {
		t.Fatalf("refusal %+v", r)
	}
	// refused before the plant for a bad value too, and recorded
	_, addr2 := run(t, modbusserver.Config{UnitID: 1, Refuser: rec, WriteAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, true)
	c2 := client(t, addr2)
	c2.SetUnitId(1)
	if err := c2.WriteFloat32(0, 500); !errors.Is(err, modbus.ErrIllegalDataValue) {
		t.Fatalf("out of range: %v", err)
	}
	if rs := rec.All(); len(rs) != 3 || rs[2].Tag != "setpoint" || rs[2].Value == "" || rs[2].Principal.Peer == "" {
		t.Fatalf("out-of-range write not recorded: %+v", rs)
	}
}

// TestMBAPSRoles: over Modbus/TCP Security, the role in the client
// certificate decides: operator writes; viewer and a certificate without a
// role read only, and their attempts are recorded with subject and role.
func TestMBAPSRoles(t *testing.T) {
	pki, srvCert, pool := mbaps(t)
	rec := &bridgetest.Refusals{}
	p, addr := run(t, modbusserver.Config{UnitID: 1, TLSCert: &srvCert, TLSClientCAs: pool, Refuser: rec,
		WriteRoles: []string{"operator", "engineer"}, WriteAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, true)
	as := func(cn, role string) *modbus.ModbusClient {
		cf, kf := pki.Client(t, cn, role)
		cert, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp+tls://" + addr, Timeout: 2 * time.Second, TLSClientCert: &cert, TLSRootCAs: pool})
		if err := c.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetUnitId(1)
		return c
	}
	for _, k := range []struct {
		cn, role string
		want     error
		value    float64
	}{
		{"alice", "operator", nil, 60},
		{"bob", "viewer", modbus.ErrIllegalFunction, 60},
		{"carol", "", modbus.ErrIllegalFunction, 60},
	} {
		c := as(k.cn, k.role)
		if v, err := c.ReadFloat32(0, modbus.HOLDING_REGISTER); err != nil {
			t.Fatalf("%s (%q) read %v %v", k.cn, k.role, v, err)
		}
		write := float64(60)
		if k.want != nil {
			write = 70
		}
		if err := c.WriteFloat32(0, float32(write)); !errors.Is(err, k.want) && err != k.want {
			t.Fatalf("%s (%q) write: %v, want %v", k.cn, k.role, err, k.want)
		}
		if v := p.Value(2).Value; v != k.value {
			t.Fatalf("after %s (%q): setpoint %v, want %v", k.cn, k.role, v, k.value)
		}
	}
	rs := rec.All()
	if len(rs) != 2 {
		t.Fatalf("refusals %+v", rs)
	}
	if r := rs[0].Principal; r.User != "bob" || r.Role != "viewer" || r.Protocol != "modbus" || r.Peer == "" {
		t.Fatalf("viewer refusal %+v", rs[0])
	}
	if r := rs[1].Principal; r.User != "carol" || r.Role != "" || !strings.Contains(rs[1].Reason, "no role") {
		t.Fatalf("no-role refusal %+v", rs[1])
	}
}

// TestClientSlotsPerAddress: one address holds at most
// max_clients_per_address connections, so others still get a slot; when
// all slots are taken the newest connection is closed at once, not left
// hanging.
func TestClientSlotsPerAddress(t *testing.T) {
	_, addr := run(t, modbusserver.Config{UnitID: 1, MaxClients: 4, MaxClientsPerAddress: 2}, true)
	time.Sleep(50 * time.Millisecond) // the slot of waitListening's probe is given back
	read := mbap(1, 3, 0, 0, 0, 1)
	served := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(read); err != nil {
			return false
		}
		var b [11]byte
		_, err := io.ReadFull(c, b[:])
		return err == nil
	}
	hog := []net.Conn{dial(t, "127.0.0.1", addr), dial(t, "127.0.0.1", addr)}
	for _, c := range hog {
		if !served(c) {
			t.Fatal("first connections not served")
		}
	}
	start := time.Now()
	if served(dial(t, "127.0.0.1", addr)) {
		t.Fatal("a third connection from 127.0.0.1 was served: max_clients_per_address 2 not enforced")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("refused connection took %v to close", d)
	}
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		if !served(dial(t, from, addr)) {
			t.Fatalf("%s not served while 127.0.0.1 holds its 2 slots", from)
		}
	}
	start = time.Now()
	if served(dial(t, "127.0.0.4", addr)) {
		t.Fatal("served beyond max_clients 4")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("connection beyond max_clients took %v to close", d)
	}
	// a slot given back is taken again
	hog[0].Close()
	time.Sleep(50 * time.Millisecond)
	if !served(dial(t, "127.0.0.4", addr)) {
		t.Fatal("slot not given back when a client left")
	}
}

// TestBadQuantityIsException3 sends quantities outside the protocol's
// bounds: each is answered with exception 3 (illegal data value) and the
// connection stays open.
func TestBadQuantityIsException3(t *testing.T) {
	_, addr := run(t, modbusserver.Config{UnitID: 1, WriteAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, true)
	c := dial(t, "127.0.0.1", addr)
	for _, k := range []struct {
		name  string
		frame []byte
	}{
		{"read holding 0", mbap(1, 3, 0, 0, 0, 0)},
		{"read holding 126", mbap(1, 3, 0, 0, 0, 126)},
		{"read input 0", mbap(1, 4, 0, 0, 0, 0)},
		{"read input 126", mbap(1, 4, 0, 0, 0, 126)},
		{"read coils 0", mbap(1, 1, 0, 0, 0, 0)},
		{"read coils 2001", mbap(1, 1, 0, 0, 0x07, 0xd1)},
		{"read discrete 2001", mbap(1, 2, 0, 0, 0x07, 0xd1)},
		{"write registers 0", mbap(1, 16, 0, 0, 0, 0, 0)},
		{"write registers 124", mbap(1, 16, 0, 0, 0, 124, 2, 0, 0)},
		{"write registers byte count", mbap(1, 16, 0, 0, 0, 2, 2, 0, 0)},
		{"write coils 1969", mbap(1, 15, 0, 0, 0x07, 0xb1, 1, 0)},
		{"write coil value", mbap(1, 5, 0, 0, 0x12, 0x34)},
		{"read short", mbap(1, 3, 0, 0)},
		{"write coils short", mbap(1, 15, 0)},
		{"write registers short", mbap(1, 16, 0, 0, 0)},
		{"write register short", mbap(1, 6)},
	} {
		got := ask(t, c, k.frame)
		if len(got) != 2 || got[0] != 0x80|k.frame[7] || got[1] != 3 {
			t.Errorf("%s: answer %x, want exception 3", k.name, got)
		}
	}
	if got := ask(t, c, mbap(1, 3, 0, 0, 0, 2)); len(got) != 6 || got[0] != 3 {
		t.Fatalf("valid read after the bad ones: %x", got)
	}
	_, port, _ := net.SplitHostPort(addr)
	out := pymodbus(t, fmt.Sprintf(`
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=%s, timeout=3)
assert c.connect()
r = c.read_holding_registers(0, 126, slave=1)
print("126", r.exception_code if r.isError() else "ok")
r = c.read_holding_registers(0, 2, slave=1)
print("2", "exception" if r.isError() else "ok")
c.close()
`, port))
	if out != "126 3\n2 ok\n" {
		t.Fatalf("pymodbus: %s", out)
	}
}

// TestDeviceIdentification answers Read Device Identification (FC 43/14)
// with the configured basic objects, to a raw request and to pymodbus.
func TestDeviceIdentification(t *testing.T) {
	_, addr := run(t, modbusserver.Config{UnitID: 1, Identification: modbusserver.Identification{Vendor: "ACME", Product: "tank-1", Version: "1.2.3"}}, true)
	c := dial(t, "127.0.0.1", addr)
	want := []byte{0x2b, 0x0e, 1, 0x81, 0, 0, 3, 0, 4, 'A', 'C', 'M', 'E', 1, 6, 't', 'a', 'n', 'k', '-', '1', 2, 5, '1', '.', '2', '.', '3'}
	if got := ask(t, c, mbap(1, 0x2b, 0x0e, 1, 0)); string(got) != string(want) {
		t.Fatalf("device identification %x, want %x", got, want)
	}
	if got := ask(t, c, mbap(1, 0x2b, 0x0e, 4, 2)); string(got) != string([]byte{0x2b, 0x0e, 4, 0x81, 0, 0, 1, 2, 5, '1', '.', '2', '.', '3'}) {
		t.Fatalf("individual object 2: %x", got)
	}
	if got := ask(t, c, mbap(1, 0x2b, 0x0e, 4, 9)); string(got) != string([]byte{0xab, 2}) {
		t.Fatalf("object 9: %x, want exception 2", got)
	}
	_, port, _ := net.SplitHostPort(addr)
	out := pymodbus(t, fmt.Sprintf(`
from pymodbus.client import ModbusTcpClient
from pymodbus.mei_message import ReadDeviceInformationRequest
c = ModbusTcpClient("127.0.0.1", port=%s, timeout=3)
assert c.connect()
r = c.execute(ReadDeviceInformationRequest(read_code=1, object_id=0, unit=1))
assert not r.isError(), r
for k in sorted(r.information):
    print(k, r.information[k].decode())
c.close()
`, port))
	if out != "0 ACME\n1 tank-1\n2 1.2.3\n" {
		t.Fatalf("pymodbus read_device_information: %s", out)
	}
}

// TestMultiTagWriteIsOneUnit: a write spanning two tags reaches the plant
// as one unit, applied in one cycle; one spanning a tag that refuses
// writes nothing.
func TestMultiTagWriteIsOneUnit(t *testing.T) {
	rec := &bridgetest.Refusals{}
	p, addr := run(t, modbusserver.Config{UnitID: 1, WriteTimeout: 2 * time.Second, Refuser: rec, WriteAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, false)
	c := client(t, addr)
	c.SetUnitId(1)
	done := make(chan error, 1)
	// setpoint 50.0 (float32 ABCD) and count 9 (int32 CDAB)
	go func() { done <- c.WriteRegisters(0, []uint16{0x4248, 0, 9, 0}) }()
	for p.Queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Step()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("a two-tag write took more than one cycle (applied tag by tag)")
	}
	if p.Value(2).Value != 50 || p.Value(3).Value != 9 {
		t.Fatalf("setpoint %v count %v", p.Value(2).Value, p.Value(3).Value)
	}
	// setpoint 60, count 10, then the read-only alarm: nothing is written
	p.Start(t.Context(), 2*time.Millisecond)
	if err := c.WriteRegisters(0, []uint16{0x4270, 0, 10, 0, 1}); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Fatalf("write spanning a read-only tag: %v", err)
	}
	if rs := rec.All(); len(rs) != 1 || rs[0].Tag != "alarm" {
		t.Fatalf("refusals %+v, want one naming alarm", rs)
	}
	if err := c.WriteRegisters(0, []uint16{0x4270, 0, 10, 0, 0xffff}); err == nil {
		t.Fatal("write of a too large speed accepted")
	}
	if p.Value(2).Value != 50 || p.Value(3).Value != 9 {
		t.Fatalf("a refused request wrote setpoint %v count %v", p.Value(2).Value, p.Value(3).Value)
	}
}

// TestIdleClientClosed: a connection without a request for idle_timeout
// is closed and gives its slot back; one that keeps polling keeps it.
func TestIdleClientClosed(t *testing.T) {
	_, addr := run(t, modbusserver.Config{UnitID: 1, IdleTimeout: 200 * time.Millisecond}, true)
	idle := dial(t, "127.0.0.1", addr)
	idle.SetDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection got data")
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
		t.Fatalf("idle connection closed after %v, want about 200ms", d)
	}
	time.Sleep(20 * time.Millisecond)
	poller := dial(t, "127.0.0.1", addr)
	for range 8 {
		ask(t, poller, mbap(1, 3, 0, 0, 0, 1))
		time.Sleep(50 * time.Millisecond)
	}
}
