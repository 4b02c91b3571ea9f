package broker_test

import (
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/plant"
)

// plantBroker is a broker set up as the bridge sets it up for node tank-1:
// the bridge's credential, an operator, a read-only viewer and a primary
// host, with commands routed to the returned channel.
func plantBroker(t *testing.T, l broker.Limits) (*broker.Broker, chan broker.Message, *bridgetest.Refusals) {
	t.Helper()
	n := broker.NodeTopics("plant", "tank-1", "mkrt")
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cmds := make(chan broker.Message, 16)
	rt := broker.NewRouter()
	rt.Handle(broker.Route{Filter: "mkrt/tank-1/+/set", Protocol: "json", Deliver: func(m broker.Message) { cmds <- m }})
	rt.Handle(broker.Route{Filter: "spBv1.0/plant/NCMD/tank-1", Protocol: "sparkplug", Deliver: func(m broker.Message) { cmds <- m }})
	ref := &bridgetest.Refusals{}
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Limits: l, Commands: rt, Refuser: ref,
		Topics: broker.Topics{State: "spBv1.0/STATE/scada", Reserved: []string{"plant-bridge"}},
		Users: []broker.User{
			{Username: "mkrt-bridge", Password: "b", Bridge: true},
			{Username: "operator", Password: "op", Publish: n.Commands, Subscribe: n.Read},
			{Username: "viewer", PasswordHash: hash, Subscribe: n.Read},
			{Username: "wide", Password: "w", Publish: []string{"#"}, Subscribe: []string{"#"}},
			{Username: "scada", Password: "s", PrimaryHost: true, Subscribe: []string{"spBv1.0/#"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, cmds, ref
}

func dial(t *testing.T, b *broker.Broker, id, user, pass string, will *mqttc.Message) (*mqttc.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return mqttc.Connect(ctx, mqttc.Options{Broker: b.URL(), ClientID: id, Username: user, Password: pass, Will: will, Timeout: 3 * time.Second})
}

func mustDial(t *testing.T, b *broker.Broker, id, user, pass string) *mqttc.Conn {
	t.Helper()
	c, err := dial(t, b, id, user, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Finding 1: a read-only user wrote a setpoint through its last will.
func TestWillOfReadOnlyUserRefused(t *testing.T) {
	b, cmds, ref := plantBroker(t, broker.Limits{})
	will := &mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", Payload: []byte("4.2"), QoS: 1, Retain: true}
	for _, u := range [][2]string{{"viewer", "hashed"}, {"operator", "op"}} {
		c, err := dial(t, b, "will-"+u[0], u[0], u[1], will)
		if err == nil {
			c.Drop()
			t.Errorf("%s connected with a will on a command topic", u[0])
		}
	}
	// a will elsewhere that the user may not publish is refused too
	if c, err := dial(t, b, "will-x", "viewer", "hashed", &mqttc.Message{Topic: "mkrt/tank-1/x", Payload: []byte("1")}); err == nil {
		c.Drop()
		t.Error("a read-only user connected with a will")
	}
	select {
	case m := <-cmds:
		t.Fatalf("a will became a command: %+v", m)
	case <-time.After(300 * time.Millisecond):
	}
	rs := ref.All()
	// (paho tries MQTT 3.1.1, then 3.1: two attempts each)
	if len(rs) < 2 || rs[0].Principal.User != "viewer" || rs[len(rs)-1].Principal.User != "operator" || rs[0].Principal.Protocol != "json" || rs[0].Value != "4.2" {
		t.Fatalf("refusals %+v", rs)
	}
	// the read-only user may still connect without a will, and read
	mustDial(t, b, "viewer-1", "viewer", "hashed")
	if _, err := dial(t, b, "viewer-2", "viewer", "wrong", nil); err == nil {
		t.Fatal("a wrong password matched the bcrypt hash")
	}
}

// Finding 1: anyone could take the bridge's client id and knock it off.
func TestReservedClientIDs(t *testing.T) {
	b, _, _ := plantBroker(t, broker.Limits{})
	bridge := mustDial(t, b, "mkrt-tank-1", "mkrt-bridge", "b")
	for _, id := range []string{"mkrt-tank-1", "mkrt-tank-1-json", "plant-bridge"} {
		if c, err := dial(t, b, id, "wide", "w", nil); err == nil {
			c.Close()
			t.Errorf("user wide took client id %s", id)
		}
	}
	select {
	case <-bridge.Lost():
		t.Fatal("the bridge's session was taken over")
	case <-time.After(200 * time.Millisecond):
	}
}

// Finding 1: a retained /set repeated the write on every bridge reconnect.
func TestRetainedCommandRefused(t *testing.T) {
	b, cmds, ref := plantBroker(t, broker.Limits{})
	op := mustDial(t, b, "op", "operator", "op")
	ctx := context.Background()
	if err := op.Publish(ctx, mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", QoS: 1, Retain: true, Payload: []byte("4.2")}); err != nil {
		t.Fatal(err)
	}
	if err := op.Publish(ctx, mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", QoS: 1, Payload: []byte("3.5")}); err != nil {
		t.Fatal(err)
	}
	m := <-cmds
	if string(m.Payload) != "3.5" || m.Principal != (plant.Principal{Protocol: "json", User: "operator", ClientID: "op", Peer: m.Principal.Peer}) || m.Principal.Peer == "" {
		t.Fatalf("command %+v", m)
	}
	select {
	case m := <-cmds:
		t.Fatalf("a second command %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	if rs := ref.All(); len(rs) != 1 || rs[0].Value != "4.2" {
		t.Fatalf("refusals %+v", rs)
	}
	// nothing was retained for the next subscriber
	w := mustDial(t, b, "w", "wide", "w")
	got := make(chan string, 1)
	w.Subscribe(ctx, "mkrt/#", 1, func(topic string, p []byte) { got <- topic })
	select {
	case tp := <-got:
		t.Fatalf("retained %s", tp)
	case <-time.After(300 * time.Millisecond):
	}
}

// Commands from a user without the grant are refused and recorded.
func TestACLDenialRecorded(t *testing.T) {
	b, cmds, ref := plantBroker(t, broker.Limits{})
	v := mustDial(t, b, "v", "viewer", "hashed")
	v.Publish(context.Background(), mqttc.Message{Topic: "spBv1.0/plant/NCMD/tank-1", QoS: 0, Payload: []byte{1}})
	select {
	case m := <-cmds:
		t.Fatalf("viewer's command delivered: %+v", m)
	case <-time.After(300 * time.Millisecond):
	}
	if rs := ref.All(); len(rs) != 1 || rs[0].Principal.Protocol != "sparkplug" || rs[0].Principal.User != "viewer" {
		t.Fatalf("refusals %+v", rs)
	}
}

// Finding 5: only the primary host's user may publish its STATE.
func TestStateOnlyFromPrimaryHost(t *testing.T) {
	b, _, _ := plantBroker(t, broker.Limits{})
	ctx := context.Background()
	host := mustDial(t, b, "host", "scada", "s")
	got := make(chan string, 4)
	if err := host.Subscribe(ctx, "spBv1.0/STATE/+", 1, func(_ string, p []byte) { got <- string(p) }); err != nil {
		t.Fatal(err)
	}
	w := mustDial(t, b, "w", "wide", "w")
	w.Publish(ctx, mqttc.Message{Topic: "spBv1.0/STATE/scada", QoS: 0, Retain: true, Payload: []byte("forged")})
	host.Publish(ctx, mqttc.Message{Topic: "spBv1.0/STATE/scada", QoS: 1, Retain: true, Payload: []byte("genuine")})
	if m := <-got; m != "genuine" {
		t.Fatalf("STATE %q", m)
	}
	if c, err := dial(t, b, "w2", "wide", "w", &mqttc.Message{Topic: "spBv1.0/STATE/scada", Payload: []byte("x")}); err == nil {
		c.Drop()
		t.Fatal("a STATE will from another user accepted")
	}
}

// Finding 2: five bytes made the broker allocate 256 MiB before any
// authentication.
func TestHugeConnectLengthRefused(t *testing.T) {
	b, _, _ := plantBroker(t, broker.Limits{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 4 {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f})
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		if err != nil || time.Since(start) > time.Second {
			t.Fatalf("connection not closed promptly: %d bytes, %v after %s", n, err, time.Since(start))
		}
		c.Close()
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("four 5-byte CONNECTs allocated %d MiB", grew>>20)
	}
	t.Logf("allocated %d KiB for four oversized CONNECT headers", (after.TotalAlloc-before.TotalAlloc)>>10)
}

// Finding 2: a connection that never sends CONNECT is closed.
func TestConnectDeadline(t *testing.T) {
	b, _, _ := plantBroker(t, broker.Limits{ConnectTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("silent connection kept %s: %v", time.Since(start), err)
	}
}

// Finding 2: the number of connections is bounded.
func TestClientLimit(t *testing.T) {
	b, _, _ := plantBroker(t, broker.Limits{MaxClients: 2, ConnectTimeout: 10 * time.Second})
	for range 2 {
		c, err := net.Dial("tcp", b.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection: %v, want closed at once", err)
	}
	if _, err := dial(t, b, "op", "operator", "op", nil); err == nil {
		t.Fatal("a client connected past max_clients")
	}
}

// A client's publishes are rate-limited.
func TestMessageRate(t *testing.T) {
	b, cmds, ref := plantBroker(t, broker.Limits{MessageRate: 5})
	op := mustDial(t, b, "op", "operator", "op")
	for range 20 {
		op.Publish(context.Background(), mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", QoS: 0, Payload: []byte("1")})
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(cmds); n > 7 || n < 4 {
		t.Fatalf("%d of 20 commands passed a limit of 5/s", n)
	}
	if n := len(ref.All()); n < 10 || n > 11 {
		t.Fatalf("%d refusals recorded", n)
	}
	// refusals are recorded up to 10 a second, so a flood cannot flood the audit
	v := mustDial(t, b, "v", "viewer", "hashed")
	for range 100 {
		v.Publish(context.Background(), mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", QoS: 0, Payload: []byte("1")})
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(ref.All()); n > 24 {
		t.Fatalf("%d refusals recorded for a flood", n)
	}
}
