package bridge_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// switchConfig is the plant of one generation. Generations 1 and 2 are
// alike: devices rio1 (level) and rio_old (aux), internal tags setpoint and
// old_alarm, setpoint in holding 0. Generation 3 drops rio_old and
// old_alarm, adds device rio2 (flow) and the internal tag level_very_high,
// and serves level_very_high as discrete input 0.
func switchConfig(gen int, brokerURL, modbusAddr string) *configs.Config {
	cfg := &configs.Config{
		Metadata: configs.Metadata{Name: "tank1", Site: "plantA"},
		Devices: []configs.Device{
			{Name: "rio1", Tags: []configs.IOTag{{Name: "level", Area: configs.AreaInput, Type: tag.Float32}}},
			{Name: "rio_old", Tags: []configs.IOTag{{Name: "aux", Area: configs.AreaInput, Type: tag.Uint16}}},
		},
		Tags: []configs.Tag{
			{Name: "setpoint", Writable: true, Min: f64(0), Max: f64(100), Initial: configs.Value{Raw: "50", Set: true}},
			{Name: "old_alarm", Type: tag.Bool, Initial: configs.Value{Raw: "0", Set: true}},
		},
		Bridge: configs.Bridge{
			MQTT: configs.MQTT{Broker: brokerURL, QoS: 1},
			Modbus: configs.ModbusServer{Listen: modbusAddr, WriteAllow: []string{"127.0.0.1/32"}, Map: []configs.RegisterMap{
				{Tag: "setpoint", Area: configs.AreaHolding, Address: 0, Type: tag.Float32},
			}},
			Metrics: configs.Metrics{Listen: "127.0.0.1:0"},
		},
	}
	if brokerURL == "" {
		cfg.Bridge.MQTT.Listen = "127.0.0.1:0"
		cfg.Bridge.MQTT.Users = []configs.User{{Username: "scada", Password: "pw"}}
	}
	if gen >= 3 {
		cfg.Devices[1] = configs.Device{Name: "rio2", Tags: []configs.IOTag{{Name: "flow", Area: configs.AreaInput, Type: tag.Float32}}}
		cfg.Tags[1] = configs.Tag{Name: "level_very_high", Type: tag.Bool, Initial: configs.Value{Raw: "1", Set: true}}
		cfg.Bridge.Modbus.Map = append(cfg.Bridge.Modbus.Map, configs.RegisterMap{Tag: "level_very_high", Area: configs.AreaDiscrete, Address: 0})
	}
	return cfg
}

// switchPlant runs a fake executive for cfg with every device tag good.
func switchPlant(ctx context.Context, t *testing.T, cfg *configs.Config) *bridgetest.Plant {
	t.Helper()
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range p.Tags() {
		if in.Device != "" {
			p.Set(tag.ID(i), float64(i)+0.5)
		}
	}
	p.Start(ctx, 2*time.Millisecond)
	return p
}

func tagID(t *testing.T, p *bridgetest.Plant, name string) tag.ID {
	t.Helper()
	for i, in := range p.Tags() {
		if in.Name == name {
			return tag.ID(i)
		}
	}
	t.Fatalf("no tag %s", name)
	return -1
}

// TestSwitch serves generation 1 of a plant, then switches the running
// bridge to generation 2 (the same metrics) and to generation 3 (a tag and
// a device gone, a tag and a device new, another register map), watched by
// real peers that must notice nothing but the one Sparkplug rebirth the
// changed metrics require: mosquitto_sub with MQTT 3.1.1 and MQTT 5 and a
// Sparkplug host on paho, through the embedded broker and through
// mosquitto, and one Modbus TCP connection.
func TestSwitch(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testSwitch(t, "") })
	t.Run("mosquitto", func(t *testing.T) { testSwitch(t, bridgetest.Mosquitto(t).URL(false)) })
}

func testSwitch(t *testing.T, brokerURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mbAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(bridgetest.FreePort(t)))
	cfg1 := switchConfig(1, brokerURL, mbAddr)
	p1 := switchPlant(ctx, t, cfg1)
	var logs bridgetest.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	})
	b, err := bridge.New(cfg1, p1, bridge.Options{StateDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	st := awaitUp(t, b)

	addr, user, pass := strings.TrimPrefix(brokerURL, "tcp://"), "", ""
	if brokerURL == "" {
		addr, user, pass = st.Broker, "scada", "pw"
	}
	topics := []string{"spBv1.0/plantA/#", "mkrt/tank1/#"}
	subs := []*bridgetest.Sub{
		bridgetest.MosquittoSub(t, bridgetest.SubOptions{Version: "mqttv311", Addr: addr, ClientID: "sub311", Username: user, Password: pass, Topics: topics}),
		bridgetest.MosquittoSub(t, bridgetest.SubOptions{Version: "5", Addr: addr, ClientID: "sub5", Username: user, Password: pass, Topics: topics}),
	}
	host := newSPHost(t, addr, user, pass)
	// The host came after the birth: it asks for one, as hosts do.
	host.ncmd(&sproto.Payload_Metric{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(sproto.DataType_Boolean)),
		Value: &sproto.Payload_Metric_BooleanValue{BooleanValue: true}})
	birth := host.await("NBIRTH on request", 0, func(m spMessage) bool { return m.kind == "NBIRTH" })
	bdSeq := metricNamed(birth.pl, "bdSeq").GetLongValue()

	mb, err := net.DialTimeout("tcp", mbAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if v, err := mbReadFloat(mb, 0); err != nil || v != 50 {
		t.Fatalf("modbus setpoint %v, %v; want 50", v, err)
	}
	if _, err := mbRead(mb, 2, 0, 1); err == nil {
		t.Fatalf("discrete input 0 served before generation 3 maps it")
	}

	// Generation 2: the same metrics.
	mark, subMarks := host.len(), marks(subs)
	cfg2 := switchConfig(2, brokerURL, mbAddr)
	p2 := switchPlant(ctx, t, cfg2)
	p2.Set(tagID(t, p2, "level"), 2.5)
	if err := b.Switch(ctx, cfg2, p2); err != nil {
		t.Fatalf("Switch to the same metrics: %v", err)
	}
	host.await("DDATA of rio1 with generation 2's level", mark, func(m spMessage) bool {
		mt := metricAlias(m.pl, uint64(tagID(t, p2, "level")))
		return m.kind == "DDATA" && m.device == "rio1" && mt != nil && mt.GetFloatValue() == 2.5
	})
	for i, s := range subs {
		awaitSub(t, s, subMarks[i], "mkrt/tank1/level", func(p []byte) bool { return bytes.HasPrefix(p, []byte(`{"v":2.5,`)) })
	}
	for _, m := range host.since(mark) {
		if m.kind != "NDATA" && m.kind != "DDATA" {
			t.Errorf("host: %s after a switch to the same metrics, want only NDATA and DDATA", m)
		}
	}
	if err := mbWriteFloat(mb, 0, 61); err != nil {
		t.Fatalf("modbus write on the connection of generation 1: %v", err)
	}
	if a := p2.Applied(); len(a) != 1 || a[0].Value.Num != 61 || len(p1.Applied()) != 0 {
		t.Errorf("modbus write reached generation 2 %+v, generation 1 %+v; want only generation 2", a, p1.Applied())
	}

	// Generation 3: other metrics.
	mark, subMarks = host.len(), marks(subs)
	cfg3 := switchConfig(3, brokerURL, mbAddr)
	p3 := switchPlant(ctx, t, cfg3)
	if err := b.Switch(ctx, cfg3, p3); err != nil {
		t.Fatalf("Switch to other metrics: %v", err)
	}
	host.await("DBIRTH of rio2", mark, func(m spMessage) bool { return m.kind == "DBIRTH" && m.device == "rio2" })
	host.await("DBIRTH of rio1", mark, func(m spMessage) bool { return m.kind == "DBIRTH" && m.device == "rio1" })
	p3.Set(tagID(t, p3, "flow"), 7.25)
	host.await("DDATA of rio2", mark, func(m spMessage) bool { return m.kind == "DDATA" && m.device == "rio2" })
	var seqs []string
	var births []spMessage
	for _, m := range host.since(mark) {
		seqs = append(seqs, m.String())
		if m.kind == "NBIRTH" {
			births = append(births, m)
		}
	}
	t.Logf("Sparkplug host after the switch to other metrics: %s", strings.Join(seqs, ", "))
	if len(births) != 1 {
		t.Fatalf("%d NBIRTH after the switch to other metrics, want exactly 1", len(births))
	}
	nb := births[0].pl
	if got := metricNamed(nb, "bdSeq").GetLongValue(); got != bdSeq || nb.GetSeq() != 0 {
		t.Errorf("rebirth NBIRTH bdSeq %d seq %d; want bdSeq %d (the session's) and seq 0", got, nb.GetSeq(), bdSeq)
	}
	if metricNamed(nb, "level_very_high") == nil || metricNamed(nb, "old_alarm") != nil {
		t.Errorf("rebirth NBIRTH lacks level_very_high or still has old_alarm")
	}
	wantOrder := []string{"DDEATH rio_old", "NBIRTH", "DBIRTH rio1", "DBIRTH rio2"}
	var order []string
	for _, m := range host.since(mark) {
		if m.kind != "NDATA" && m.kind != "DDATA" {
			order = append(order, strings.TrimSpace(m.kind+" "+m.device))
		}
	}
	if strings.Join(order, ", ") != strings.Join(wantOrder, ", ") {
		t.Errorf("births and deaths after the switch: %v, want %v", order, wantOrder)
	}
	for i, s := range subs {
		awaitSub(t, s, subMarks[i], "mkrt/tank1/old_alarm", func(p []byte) bool { return len(p) == 0 })
		awaitSub(t, s, subMarks[i], "mkrt/tank1/level_very_high", func(p []byte) bool { return bytes.HasPrefix(p, []byte(`{"v":true,`)) })
		awaitSub(t, s, subMarks[i], "spBv1.0/plantA/DDATA/tank1/rio2", func([]byte) bool { return true })
		n := 0
		for _, m := range s.Messages()[subMarks[i]:] {
			if strings.Contains(m.Topic, "/NBIRTH/") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d NBIRTH after the switch to other metrics, want 1", s, n)
		}
	}
	// A client that comes now finds the retained topics of generation 3.
	retained := retainedTopics(ctx, t, addr, user, pass, "mkrt/tank1/#")
	if !retained["mkrt/tank1/level_very_high"] || retained["mkrt/tank1/old_alarm"] {
		t.Errorf("retained JSON topics after the switch: %v; want level_very_high, not old_alarm", retained)
	}
	// The Modbus connection of generation 1 reads generation 3's map.
	if bits, err := mbRead(mb, 2, 0, 1); err != nil || len(bits) != 2 || bits[1]&1 != 1 {
		t.Errorf("discrete input 0 (level_very_high) on the first connection: % x, %v; want 1", bits, err)
	}
	// Sparkplug commands reach generation 3.
	host.ncmd(&sproto.Payload_Metric{Name: proto.String("setpoint"), Datatype: proto.Uint32(uint32(sproto.DataType_Double)),
		Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 33}})
	awaitTrue(t, "NCMD write applied by generation 3", func() bool {
		a := p3.Applied()
		return len(a) == 1 && a[0].Value.Num == 33
	})
	if resp, err := http.Get("http://" + st.Metrics + "/metrics"); err != nil {
		t.Errorf("metrics endpoint after the switches: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `mkrt_bridge_writes_total{component="modbus",result="ok"} 1`) {
			t.Errorf("metrics after the switches lack the modbus write")
		}
	}

	// Nobody was disconnected; no NDEATH was published.
	for _, s := range subs {
		if !s.Running() || s.Connects() != 1 {
			t.Errorf("%s: running %v after %d CONNECTs, want running on its first:\n%s", s, s.Running(), s.Connects(), s.Log())
		}
		for _, m := range s.Messages() {
			if strings.Contains(m.Topic, "/NDEATH/") {
				t.Errorf("%s received an NDEATH", s)
			}
		}
	}
	for _, m := range host.since(0) {
		if m.kind == "NDEATH" {
			t.Errorf("host received an NDEATH")
		}
	}
	select {
	case err := <-host.lost:
		t.Errorf("Sparkplug host lost its connection: %v", err)
	default:
	}
	if got := b.Status(); got.Broker != st.Broker || got.Metrics != st.Metrics || got.Sparkplug.BdSeq != bdSeq || !got.Sparkplug.Born {
		t.Errorf("status after the switches %+v (sparkplug %+v), before %+v", got, got.Sparkplug, st)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
}

// TestSwitchRefuses: a change the bridge cannot take over live is refused,
// naming the field, and the bridge serves on as it was.
func TestSwitchRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mbAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(bridgetest.FreePort(t)))
	cfg := switchConfig(1, "", mbAddr)
	p := switchPlant(ctx, t, cfg)
	b, err := bridge.New(cfg, p, bridge.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Switch(ctx, cfg, p); err == nil {
		t.Errorf("Switch before Run succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	st := awaitUp(t, b)
	for _, tc := range []struct {
		edit func(*configs.Config)
		want string
	}{
		{func(c *configs.Config) { c.Bridge.MQTT.Listen = "127.0.0.1:1" }, "bridge.mqtt.listen"},
		{func(c *configs.Config) { c.Bridge.MQTT.Users[0].Password = "other" }, "bridge.mqtt.users[0].password"},
		{func(c *configs.Config) { c.Bridge.MQTT.TLS.Cert = "/etc/ssl/x.pem" }, "bridge.mqtt.tls.cert"},
		{func(c *configs.Config) { c.Bridge.Sparkplug.Group = "other" }, "bridge.sparkplug.group"},
		{func(c *configs.Config) { c.Metadata.Name = "tank2" }, "bridge.sparkplug.node"},
		{func(c *configs.Config) { c.Bridge.Modbus.Listen = "127.0.0.1:1" }, "bridge.modbus.listen"},
		{func(c *configs.Config) { c.Bridge.Metrics.Listen = "127.0.0.1:1" }, "bridge.metrics.listen"},
		{func(c *configs.Config) { c.Bridge.JSON.Enabled = new(bool) }, "bridge.json.enabled"},
	} {
		nc := switchConfig(1, "", mbAddr)
		tc.edit(nc)
		err := b.Switch(ctx, nc, switchPlant(ctx, t, nc))
		if !errors.Is(err, bridge.ErrNotSwitchable) || !strings.Contains(err.Error(), tc.want+" ") {
			t.Errorf("Switch changing %s: %v; want ErrNotSwitchable naming it", tc.want, err)
		}
	}
	bad := switchConfig(1, "", mbAddr)
	bad.Bridge.Modbus.Map = append(bad.Bridge.Modbus.Map, configs.RegisterMap{Tag: "nope", Area: configs.AreaCoil})
	if err := b.Switch(ctx, bad, switchPlant(ctx, t, bad)); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Switch to a map of an unknown tag: %v", err)
	}
	// Still generation 1, nothing switched: a write lands in p.
	c, err := mqttc.Connect(ctx, mqttc.Options{Broker: "tcp://" + st.Broker, ClientID: "w", Username: "scada", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(ctx, mqttc.Message{Topic: "mkrt/tank1/setpoint/set", QoS: 1, Payload: []byte("12")}); err != nil {
		t.Fatal(err)
	}
	awaitTrue(t, "write applied by generation 1", func() bool { return len(p.Applied()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func awaitUp(t *testing.T, b *bridge.Bridge) bridge.Status {
	t.Helper()
	var st bridge.Status
	awaitTrue(t, "bridge up", func() bool {
		st = b.Status()
		return st.Sparkplug != nil && st.Sparkplug.Born && st.JSONConnected && st.ModbusListening && st.Metrics != ""
	})
	return st
}

// awaitTrue polls cond every 10 ms for at most 10 s.
func awaitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func marks(subs []*bridgetest.Sub) []int {
	out := make([]int, len(subs))
	for i, s := range subs {
		out[i] = len(s.Messages())
	}
	return out
}

// awaitSub waits until s received, after its first from messages, a
// message on topic whose payload satisfies ok.
func awaitSub(t *testing.T, s *bridgetest.Sub, from int, topic string, ok func([]byte) bool) {
	t.Helper()
	awaitTrue(t, fmt.Sprintf("%s: %s", s, topic), func() bool {
		for _, m := range s.Messages()[from:] {
			if m.Topic == topic && ok(m.Payload) {
				return true
			}
		}
		return false
	})
}

// retainedTopics subscribes a new client and collects the retained topics
// it is sent within a second.
func retainedTopics(ctx context.Context, t *testing.T, addr, user, pass, filter string) map[string]bool {
	t.Helper()
	c, err := mqttc.Connect(ctx, mqttc.Options{Broker: "tcp://" + addr, ClientID: "late", Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	got := map[string]bool{}
	if err := c.Subscribe(ctx, filter, 1, func(topic string, p []byte) {
		mu.Lock()
		got[topic] = len(p) > 0
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	out := map[string]bool{}
	for k, v := range got {
		if v {
			out[k] = true
		}
	}
	return out
}

// spHost is a Sparkplug host application on paho: it records every
// message of the group and may send NCMDs.
type spHost struct {
	t    *testing.T
	c    mqtt.Client
	lost chan error

	mu   sync.Mutex
	msgs []spMessage
}

type spMessage struct {
	kind, device string
	pl           *sproto.Payload
}

func (m spMessage) String() string {
	s := m.kind
	if m.device != "" {
		s += " " + m.device
	}
	if m.kind != "NDEATH" {
		s += fmt.Sprintf(" seq %d", m.pl.GetSeq())
	}
	if bd := metricNamed(m.pl, "bdSeq"); bd != nil {
		s += fmt.Sprintf(" bdSeq %d", bd.GetLongValue())
	}
	return s
}

func newSPHost(t *testing.T, addr, user, pass string) *spHost {
	t.Helper()
	h := &spHost{t: t, lost: make(chan error, 1)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("sphost").SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { h.lost <- err })
	h.c = mqtt.NewClient(o)
	if tok := h.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("Sparkplug host: connect %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { h.c.Disconnect(100) })
	tok := h.c.Subscribe("spBv1.0/plantA/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		f := strings.Split(m.Topic(), "/")
		if len(f) < 4 {
			return
		}
		pl := &sproto.Payload{}
		if err := proto.Unmarshal(m.Payload(), pl); err != nil {
			t.Errorf("Sparkplug host: undecodable %s: %v", m.Topic(), err)
			return
		}
		sm := spMessage{kind: f[2], pl: pl}
		if len(f) > 4 {
			sm.device = f[4]
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, sm)
		h.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("Sparkplug host: subscribe: %v", tok.Error())
	}
	return h
}

func (h *spHost) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

func (h *spHost) since(i int) []spMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]spMessage(nil), h.msgs[i:]...)
}

// await returns the first message from the from-th on that satisfies ok,
// waiting at most 10 s.
func (h *spHost) await(what string, from int, ok func(spMessage) bool) spMessage {
	h.t.Helper()
	var found spMessage
	awaitTrue(h.t, "Sparkplug host: "+what, func() bool {
		for _, m := range h.since(from) {
			if ok(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// ncmd sends one NCMD to the node.
func (h *spHost) ncmd(ms ...*sproto.Payload_Metric) {
	h.t.Helper()
	b, err := proto.Marshal(&sproto.Payload{Timestamp: proto.Uint64(uint64(time.Now().UnixMilli())), Metrics: ms})
	if err != nil {
		h.t.Fatal(err)
	}
	if tok := h.c.Publish("spBv1.0/plantA/NCMD/tank1", 0, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		h.t.Fatalf("Sparkplug host: NCMD: %v", tok.Error())
	}
}

func metricNamed(pl *sproto.Payload, name string) *sproto.Payload_Metric {
	for _, m := range pl.GetMetrics() {
		if m.GetName() == name {
			return m
		}
	}
	return nil
}

func metricAlias(pl *sproto.Payload, alias uint64) *sproto.Payload_Metric {
	for _, m := range pl.GetMetrics() {
		if m.Alias != nil && m.GetAlias() == alias {
			return m
		}
	}
	return nil
}

// mbRead sends one Modbus TCP read (function fc) on conn and returns the
// response's data: the byte count, then the bytes. An exception is an
// error.
func mbRead(conn net.Conn, fc byte, addr, qty uint16) ([]byte, error) {
	return mbRequest(conn, append([]byte{fc}, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, addr), qty)...))
}

func mbReadFloat(conn net.Conn, addr uint16) (float32, error) {
	b, err := mbRead(conn, 3, addr, 2)
	if err != nil {
		return 0, err
	}
	if len(b) != 5 {
		return 0, fmt.Errorf("modbus: %d bytes of data", len(b))
	}
	return math.Float32frombits(binary.BigEndian.Uint32(b[1:])), nil
}

func mbWriteFloat(conn net.Conn, addr uint16, v float32) error {
	pdu := []byte{16}
	pdu = binary.BigEndian.AppendUint16(pdu, addr)
	pdu = binary.BigEndian.AppendUint16(pdu, 2)
	pdu = append(pdu, 4)
	pdu = binary.BigEndian.AppendUint32(pdu, math.Float32bits(v))
	_, err := mbRequest(conn, pdu)
	return err
}

var mbTransaction uint16

// mbRequest sends a PDU to unit 1 in an MBAP frame and reads the answer's
// PDU data (without the function code), bounded by 5 s.
func mbRequest(conn net.Conn, pdu []byte) ([]byte, error) {
	mbTransaction++
	frame := binary.BigEndian.AppendUint16(nil, mbTransaction)
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(pdu)+1))
	frame = append(append(frame, 1), pdu...)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(frame); err != nil {
		return nil, err
	}
	head := make([]byte, 7)
	if _, err := io.ReadFull(conn, head); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(head[4:]))
	if n < 2 {
		return nil, fmt.Errorf("modbus: answer of %d bytes", n)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	if body[0]&0x80 != 0 {
		return nil, fmt.Errorf("modbus: exception %d", body[1])
	}
	return body[1:], nil
}
