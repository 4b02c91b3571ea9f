package sparkplug_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/bridge/sparkplug"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/shm/wire"
)

func setpoint(v float64) *sproto.Payload_Metric {
	return &sproto.Payload_Metric{Name: proto.String("setpoint"), Datatype: proto.Uint32(uint32(sproto.DataType_Double)),
		Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: v}}
}

// Finding 5: a retained far-future STATE sent the node offline and made it
// ignore every genuine STATE after it until restarted.
func TestFutureStateIgnored(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ch := subscribe(t, b.URL(false), mqttc.Options{})
	host := newCommander(t, b.URL(false))
	now := time.Now().UnixMilli()
	host.state(true, now)
	startNode(t, b.URL(false), t.TempDir(), func(c *sparkplug.Config) { c.PrimaryHost = "scada" })
	expect(t, ch, "NBIRTH")
	host.state(false, time.Now().Add(10*365*24*time.Hour).UnixMilli()) // forged
	time.Sleep(500 * time.Millisecond)
	for len(ch) > 0 {
		if m := <-ch; strings.Contains(m.topic, "NDEATH") {
			t.Fatal("a far-future STATE ended the session")
		}
	}
	// the genuine host still steers the node
	host.state(false, time.Now().UnixMilli())
	expect(t, ch, "NDEATH")
	host.state(true, time.Now().UnixMilli()+1)
	expect(t, ch, "NBIRTH")
}

// Finding 1 (Sparkplug): a retained NCMD was taken as a command on every
// reconnect.
func TestRetainedNCMDIgnored(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	host := newCommander(t, b.URL(false))
	pl, _ := proto.Marshal(&sproto.Payload{Metrics: []*sproto.Payload_Metric{setpoint(70)}})
	if err := host.c.Publish(context.Background(), mqttc.Message{Topic: "spBv1.0/plant/NCMD/edge1", QoS: 1, Retain: true, Payload: pl}); err != nil {
		t.Fatal(err)
	}
	ref := &bridgetest.Refusals{}
	r := startNode(t, b.URL(false), t.TempDir(), func(c *sparkplug.Config) { c.Refuser = ref })
	deadline := time.Now().Add(5 * time.Second)
	for len(ref.All()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if rf := ref.All(); len(rf) != 1 || !strings.Contains(rf[0].Reason, "retained") || rf[0].Principal.Protocol != "sparkplug" {
		t.Fatalf("refusals %+v", rf)
	}
	time.Sleep(100 * time.Millisecond)
	if v := r.plant.Value(idSetpoint).Value; v != 50 {
		t.Fatalf("setpoint %v: the retained NCMD was applied", v)
	}
}

// holdPlant records who writes and holds each write until released.
type holdPlant struct {
	*bridgetest.Plant
	who  chan plant.Principal
	hold chan struct{}
}

func (p *holdPlant) Write(ctx context.Context, c wire.Command) (wire.Result, error) {
	pr, _ := plant.PrincipalFrom(ctx)
	p.who <- pr
	select {
	case <-p.hold:
	case <-ctx.Done():
		return wire.Result{}, ctx.Err()
	}
	return p.Plant.Write(ctx, c)
}

// Findings 6 and 8: with the embedded broker an NCMD's writes carry who
// sent it; they wait in a bounded queue for the workers, and past it are
// refused as busy rather than each starting a goroutine.
func TestEmbeddedNCMDPrincipalAndQueue(t *testing.T) {
	bp, err := bridgetest.NewPlantFromConfig(plantConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &holdPlant{Plant: bp, who: make(chan plant.Principal, 16), hold: make(chan struct{})}
	rt, ref := broker.NewRouter(), &bridgetest.Refusals{}
	n := broker.NodeTopics("plant", "edge1", "mkrt")
	brk, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Commands: rt, Refuser: ref, Users: []broker.User{
		{Username: "mkrt-bridge", Password: "b", Bridge: true},
		{Username: "scada", Password: "s", Publish: n.Commands, Subscribe: n.Read},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer brk.Close()
	cfg := sparkplug.Config{Group: "plant", Node: "edge1", StoreDir: t.TempDir(), Commands: rt, Refuser: ref, Workers: 1, Queue: 2,
		MQTT: mqttc.Options{Broker: brk.URL(), ClientID: "mkrt-edge1", Username: "mkrt-bridge", Password: "b"}}
	node, err := sparkplug.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bp.Start(ctx, 5*time.Millisecond)
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c, err := mqttc.Connect(ctx, mqttc.Options{Broker: brk.URL(), ClientID: "ignition", Username: "scada", Password: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host := &commander{t, c}
	// The first write is with the (one) worker before the others arrive:
	// then two wait in the queue and three are refused, whatever the timing.
	host.send("spBv1.0/plant/NCMD/edge1", setpoint(1))
	who := <-p.who
	host.send("spBv1.0/plant/NCMD/edge1", setpoint(2), setpoint(3), setpoint(4), setpoint(5), setpoint(6))
	if who.Protocol != "sparkplug" || who.User != "scada" || who.ClientID != "ignition" || who.Peer == "" {
		t.Fatalf("write made by %+v", who)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ref.All()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// one with the worker, two waiting, three refused
	rf := ref.All()
	if len(rf) != 3 || !strings.Contains(rf[0].Reason, "busy") || rf[0].Tag != "setpoint" || rf[0].Principal.User != "scada" {
		t.Fatalf("refusals %+v", rf)
	}
	for range 3 {
		p.hold <- struct{}{}
	}
	deadline = time.Now().Add(5 * time.Second)
	for bp.Value(idSetpoint).Value != 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if v := bp.Value(idSetpoint).Value; v != 3 {
		t.Fatalf("setpoint %v, want the third write's 3", v)
	}
}
