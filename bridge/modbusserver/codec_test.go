package modbusserver_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/modbusserver"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus"
	"github.com/mkrt/mkrt/shm/tag"
)

var orders = []configs.Order{configs.ABCD, configs.CDAB, configs.BADC, configs.DCBA}

// agreeValues: for every type, the value the plant starts with (served to
// the client) and the value the client then writes.
var agreeValues = []struct {
	typ         tag.DataType
	read, write float64
	text, wrote string
}{
	{typ: tag.Bool, read: 1, write: 0},
	{typ: tag.Int16, read: -2, write: 12345},
	{typ: tag.Uint16, read: 0x1234, write: math.MaxUint16},
	{typ: tag.Int32, read: -123456789, write: math.MinInt32},
	{typ: tag.Uint32, read: 3e9, write: math.MaxUint32},
	{typ: tag.Int64, read: -(1 << 50) + 7, write: 1 << 53},
	{typ: tag.Float32, read: 1234.5678, write: -2.5},
	{typ: tag.Float64, read: -math.Pi, write: 1e300},
	{typ: tag.String, text: "PUMP-7", wrote: "AB-9"},
}

// agreeConfig serves a writable tag "srv_<type>_<order>" of every type in
// every order in holding registers, and has a device "scada" (at addr)
// whose tags "cli_<type>_<order>" are the same registers.
func agreeConfig(addr string) (*configs.Config, []configs.RegisterMap) {
	cfg := &configs.Config{}
	dev := configs.Device{Name: "scada", Driver: configs.DriverModbusTCP, Address: addr,
		Poll: configs.Duration(5 * time.Millisecond), Timeout: configs.Duration(time.Second)}
	var m []configs.RegisterMap
	a := 0
	for _, c := range agreeValues {
		for _, o := range orders {
			name := fmt.Sprintf("%s_%s", c.typ, o)
			st := configs.Tag{Name: "srv_" + name, Type: c.typ, Writable: true,
				Initial: configs.Value{Raw: strconv.FormatFloat(c.read, 'g', -1, 64), Set: true}}
			if c.typ == tag.String {
				st.Length, st.Initial.Raw = 6, c.text
			}
			cfg.Tags = append(cfg.Tags, st)
			m = append(m, configs.RegisterMap{Tag: st.Name, Area: configs.AreaHolding, Address: a, Type: c.typ, Order: o})
			dev.Tags = append(dev.Tags, configs.IOTag{Name: "cli_" + name, Area: configs.AreaHolding, Address: a, Type: c.typ, Order: o, Length: st.Length})
			a += c.typ.Registers(st.Length)
		}
	}
	cfg.Devices = []configs.Device{dev}
	return cfg, m
}

// scan calls Latest until cond holds, failing after 10 s.
func scan(t *testing.T, s *modbus.Scanner, tab *tag.Table, what string, cond func() []string) {
	t.Helper()
	var wrong []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.Latest(tab.Samples, tab.Text)
		if wrong = cond(); len(wrong) == 0 {
			return
		}
	}
	t.Fatalf("%s: not within 10s: %v; scanner %+v", what, wrong, s.Stats())
}

// TestClientAndServerAgree runs the executive's field-device client
// (io/modbus) against this server for every type in every order, strings
// included: the client reads what the server serves, and the plant gets
// what the client writes. Both sides encode with io/modbus/register.
func TestClientAndServerAgree(t *testing.T) {
	port := bridgetest.FreePort(t)
	cfg, m := agreeConfig(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, p, m, port, true)

	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := modbus.NewScanner(cfg.Devices[0], tab)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Stop)
	// check lists the client tags that do not hold the want values.
	check := func(text func(i int) string, num func(i int) float64) func() []string {
		return func() []string {
			var wrong []string
			for i, c := range agreeValues {
				for _, o := range orders {
					name := fmt.Sprintf("cli_%s_%s", c.typ, o)
					id, _ := tab.Lookup(name)
					smp := tab.Samples[id]
					switch {
					case smp.Quality != tag.Good:
						wrong = append(wrong, fmt.Sprintf("%s %v", name, smp.Quality))
					case c.typ == tag.String && tab.Text[id] != text(i):
						wrong = append(wrong, fmt.Sprintf("%s %q", name, tab.Text[id]))
					case c.typ != tag.String && smp.Value != num(i):
						wrong = append(wrong, fmt.Sprintf("%s %v", name, smp.Value))
					}
				}
			}
			return wrong
		}
	}
	scan(t, sc, tab, "client reads what the server serves", check(
		func(i int) string { return agreeValues[i].text },
		func(i int) float64 {
			if agreeValues[i].typ == tag.Float32 {
				return float64(float32(agreeValues[i].read))
			}
			return agreeValues[i].read
		}))

	for _, c := range agreeValues {
		for _, o := range orders {
			id, _ := tab.Lookup(fmt.Sprintf("cli_%s_%s", c.typ, o))
			tab.Samples[id].Value, tab.Text[id] = c.write, c.wrote
		}
	}
	sc.SetOutputs(tab.Samples, tab.Text)
	scan(t, sc, tab, "client reads back what it wrote", check(
		func(i int) string { return agreeValues[i].wrote },
		func(i int) float64 { return agreeValues[i].write }))

	// The plant holds what the client wrote, not only a consistent mistake.
	ids := map[string]tag.ID{}
	for i, in := range p.Tags() {
		ids[in.Name] = tag.ID(i)
	}
	text := map[tag.ID]string{}
	for _, w := range p.Applied() {
		text[w.Tag] = string(w.Value.Text)
	}
	for _, c := range agreeValues {
		for _, o := range orders {
			name := fmt.Sprintf("srv_%s_%s", c.typ, o)
			id := ids[name]
			if got := p.Value(id).Value; c.typ != tag.String && got != c.write {
				t.Errorf("%s = %v, want %v", name, got, c.write)
			}
			if c.typ == tag.String && text[id] != c.wrote {
				t.Errorf("%s = %q, want %q", name, text[id], c.wrote)
			}
		}
	}

	// Registers as SCADA sees them: strings swap bytes for BADC/DCBA only.
	mc := client(t, r.addr)
	for o, want := range map[configs.Order][]uint16{
		configs.ABCD: {0x4142, 0x2d39, 0}, configs.CDAB: {0x4142, 0x2d39, 0},
		configs.BADC: {0x4241, 0x392d, 0}, configs.DCBA: {0x4241, 0x392d, 0},
	} {
		i := slices.IndexFunc(m, func(r configs.RegisterMap) bool { return r.Tag == "srv_string_"+string(o) })
		got, err := mc.ReadRegisters(uint16(m[i].Address), 3, mb.HOLDING_REGISTER)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("string %s: registers %04x, %v; want %04x", o, got, err, want)
		}
	}
}

// TestRefreshAllocatesNothing: the register image of every type in every
// order, strings included, is refreshed without allocating.
func TestRefreshAllocatesNothing(t *testing.T) {
	cfg, m := agreeConfig("127.0.0.1:1")
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := modbusserver.New(modbusserver.Config{Listen: "127.0.0.1:1", Map: m}, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := srv.Refresh(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Refresh allocates %v times", n)
	}
}
