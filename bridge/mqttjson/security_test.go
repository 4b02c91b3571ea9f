package mqttjson_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/mqttjson"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/wire"
)

// whoPlant records who each write came from, and can hold writes back.
type whoPlant struct {
	*bridgetest.Plant
	who  chan plant.Principal
	hold chan struct{} // when not nil, a write waits for a receive from it
}

func (p *whoPlant) Write(ctx context.Context, c wire.Command) (wire.Result, error) {
	pr, _ := plant.PrincipalFrom(ctx)
	p.who <- pr
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-ctx.Done():
			return wire.Result{}, ctx.Err()
		}
	}
	return p.Plant.Write(ctx, c)
}

// run starts j and stops it when the test ends.
func run(t *testing.T, j *mqttjson.Publisher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// results subscribes to the /set results of node edge1.
func results(t *testing.T, c *mqttc.Conn) chan mqttjson.Result {
	rs := make(chan mqttjson.Result, 64)
	if err := c.Subscribe(context.Background(), "mkrt/edge1/+/set/result", 1, func(_ string, p []byte) {
		var r mqttjson.Result
		json.Unmarshal(p, &r)
		rs <- r
	}); err != nil {
		t.Fatal(err)
	}
	return rs
}

func awaitResult(t *testing.T, rs chan mqttjson.Result) mqttjson.Result {
	t.Helper()
	select {
	case r := <-rs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no /set result")
	}
	return mqttjson.Result{}
}

// embedded runs a publisher for p (as mod changes its config) behind an
// embedded broker that admits the bridge and an operator.
func embedded(t *testing.T, p plant.Plant, mod func(*mqttjson.Config)) (*broker.Broker, *bridgetest.Refusals) {
	t.Helper()
	rt, ref := broker.NewRouter(), &bridgetest.Refusals{}
	n := broker.NodeTopics("g", "edge1", "mkrt")
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Commands: rt, Refuser: ref, Users: []broker.User{
		{Username: "mkrt-bridge", Password: "b", Bridge: true},
		{Username: "operator", Password: "op", Publish: n.Commands, Subscribe: n.Read},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg := mqttjson.Config{Prefix: "mkrt", Node: "edge1", QoS: 1, Commands: rt, Refuser: ref,
		MQTT: mqttc.Options{Broker: b.URL(), ClientID: "mkrt-edge1-json", Username: "mkrt-bridge", Password: "b"}}
	mod(&cfg)
	j, err := mqttjson.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	run(t, j)
	return b, ref
}

// Findings 1 and 6: with the embedded broker a /set carries its publisher to
// the write, and what is refused before the write is recorded with it.
func TestEmbeddedSetCarriesPrincipal(t *testing.T) {
	p := &whoPlant{Plant: testPlant(t), who: make(chan plant.Principal, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, 5*time.Millisecond)
	b, ref := embedded(t, p, func(c *mqttjson.Config) {})
	op, err := mqttc.Connect(ctx, mqttc.Options{Broker: b.URL(), ClientID: "hmi-7", Username: "operator", Password: "op"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	rs := results(t, op)
	time.Sleep(200 * time.Millisecond) // the publisher's session is up
	op.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Payload: []byte(`{"v":42,"id":"a"}`)})
	if r := awaitResult(t, rs); !r.OK || r.ID != "a" {
		t.Fatalf("result %+v", r)
	}
	if who := <-p.who; who.Protocol != "json" || who.User != "operator" || who.ClientID != "hmi-7" || who.Peer == "" {
		t.Fatalf("write made by %+v", who)
	}
	op.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Payload: []byte(`{"v":`)})
	if r := awaitResult(t, rs); r.OK {
		t.Fatalf("undecodable request answered %+v", r)
	}
	op.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Retain: true, Payload: []byte(`7`)})
	time.Sleep(200 * time.Millisecond)
	rf := ref.All()
	if len(rf) != 2 || rf[0].Tag != "setpoint" || rf[0].Principal.User != "operator" || rf[0].Value != `{"v":` ||
		!strings.Contains(rf[1].Reason, "retained") {
		t.Fatalf("refusals %+v", rf)
	}
	if len(p.who) != 0 {
		t.Fatalf("a refused request reached the plant: %+v", <-p.who)
	}
}

// Finding 1: a retained /set on an external broker was taken as a command
// on every reconnect of the bridge.
func TestRetainedSetIgnored(t *testing.T) {
	mq := bridgetest.Mosquitto(t)
	p := &whoPlant{Plant: testPlant(t), who: make(chan plant.Principal, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, 5*time.Millisecond)
	c, err := mqttc.Connect(ctx, mqttc.Options{Broker: mq.URL(false), ClientID: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Retain: true, Payload: []byte("4.2")}); err != nil {
		t.Fatal(err)
	}
	ref := &bridgetest.Refusals{}
	j, err := mqttjson.New(mqttjson.Config{Prefix: "mkrt", Node: "edge1", QoS: 1, Refuser: ref, MQTT: mqttc.Options{Broker: mq.URL(false), ClientID: "edge1-json"}}, p)
	if err != nil {
		t.Fatal(err)
	}
	run(t, j)
	rs := results(t, c)
	deadline := time.Now().Add(5 * time.Second)
	for len(ref.All()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if rf := ref.All(); len(rf) != 1 || rf[0].Principal != broker.External("json", "mkrt/edge1/setpoint/set") || rf[0].Value != "4.2" {
		t.Fatalf("refusals %+v", rf)
	}
	// a live /set still works, and says the user is unknown
	c.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Payload: []byte("12")})
	if r := awaitResult(t, rs); !r.OK {
		t.Fatalf("result %+v", r)
	}
	if who := <-p.who; who.Protocol != "json" || !strings.Contains(who.User, "unknown") {
		t.Fatalf("principal %+v", who)
	}
	if len(p.who) != 0 || p.Value(0).Value != 12 {
		t.Fatalf("setpoint %v: the retained 4.2 was written", p.Value(0).Value)
	}
}

// Finding 8: requests wait in a bounded queue; past it they are refused as
// busy, answered, and no goroutine is started per request.
func TestSetQueueBounded(t *testing.T) {
	p := &whoPlant{Plant: testPlant(t), who: make(chan plant.Principal, 64), hold: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, 5*time.Millisecond)
	b, ref := embedded(t, p, func(c *mqttjson.Config) { c.Workers, c.Queue = 1, 2 })
	c, err := mqttc.Connect(ctx, mqttc.Options{Broker: b.URL(), ClientID: "mkrt-flood", Username: "mkrt-bridge", Password: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs := results(t, c)
	time.Sleep(200 * time.Millisecond)
	// The first write is with the (one) worker before the rest arrive: then
	// two wait in the queue and seven are refused, whatever the timing.
	c.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Payload: []byte("1")})
	<-p.who
	for range 9 {
		c.Publish(ctx, mqttc.Message{Topic: "mkrt/edge1/setpoint/set", QoS: 1, Payload: []byte("1")})
	}
	busy := 0
	for range 7 {
		if r := awaitResult(t, rs); !r.OK && strings.Contains(r.Error, "busy") {
			busy++
		}
	}
	if busy != 7 || len(ref.All()) != 7 {
		t.Fatalf("%d busy answers, %d refusals; want 7", busy, len(ref.All()))
	}
	for range 3 {
		p.hold <- struct{}{}
		if r := awaitResult(t, rs); !r.OK {
			t.Fatalf("queued request: %+v", r)
		}
	}
}

// FuzzSetPayload: any /set payload is decoded or refused with an error,
// never a panic, for every kind of tag.
func FuzzSetPayload(f *testing.F) {
	for _, s := range []string{"12.5", `{"v":3,"id":"a1"}`, "true", `"text"`, `{"id":"z"}`, "{", "null", `{"v":{"v":1}}`, "1e400", `[1]`, `"\u0000"`, " \t7 "} {
		f.Add([]byte(s))
	}
	tags := testPlant(f).Tags()
	f.Fuzz(func(t *testing.T, payload []byte) {
		for i := range tags {
			in := &tags[i]
			v, text, _, err := mqttjson.ParseSet(in, payload)
			if err != nil {
				if v != 0 || text != "" {
					t.Fatalf("ParseSet(%q) for %s: %v %q with error %v", payload, in.Type, v, text, err)
				}
				continue
			}
			if text != "" && in.Type.Numeric() {
				t.Fatalf("ParseSet(%q): text %q for a %s tag", payload, text, in.Type)
			}
		}
	})
}
