package bridge_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/configs"
)

// Finding 6 (MQTT): the audit records the MQTT user and client id of every
// command taken through the embedded broker, and the attempts refused
// before a write: a read-only user's will, a retained /set.
func TestMQTTWritesAuditedWithUser(t *testing.T) {
	cfg := &configs.Config{
		Metadata: configs.Metadata{Name: "tank-1", Site: "plantA"},
		Tags:     []configs.Tag{{Name: "level_sp", Writable: true, Min: f64(0), Max: f64(10), Initial: configs.Value{Raw: "1", Set: true}}},
		Bridge: configs.Bridge{MQTT: configs.MQTT{Listen: "127.0.0.1:0", Users: []configs.User{
			{Username: "scada", Password: "pw"}, {Username: "viewer", Password: "ro", ReadOnly: true}}}},
	}
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, 2*time.Millisecond)
	dir := t.TempDir()
	b, err := bridge.New(cfg, p, bridge.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var st bridge.Status
	awaitTrue(t, "bridge up", func() bool {
		st = b.Status()
		return st.Sparkplug != nil && st.Sparkplug.Born && st.JSONConnected
	})
	url := "tcp://" + st.Broker
	if c, err := mqttc.Connect(ctx, mqttc.Options{Broker: url, ClientID: "ro-1", Username: "viewer", Password: "ro",
		Will: &mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", Payload: []byte("4.2"), QoS: 1, Retain: true}}); err == nil {
		c.Drop()
		t.Fatal("a read-only user connected with a will on a /set topic")
	}
	if c, err := mqttc.Connect(ctx, mqttc.Options{Broker: url, ClientID: "mkrt-tank-1", Username: "scada", Password: "pw"}); err == nil {
		c.Close()
		t.Fatal("a user took the bridge's client id")
	}
	op, err := mqttc.Connect(ctx, mqttc.Options{Broker: url, ClientID: "hmi-3", Username: "scada", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	op.Publish(ctx, mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", QoS: 1, Retain: true, Payload: []byte("9")})
	op.Publish(ctx, mqttc.Message{Topic: "mkrt/tank-1/level_sp/set", QoS: 1, Payload: []byte("3.5")})
	awaitTrue(t, "write applied", func() bool { return p.Value(0).Value == 3.5 })
	var es []audit.Entry
	awaitTrue(t, "audit entries", func() bool {
		es = es[:0]
		audit.Scan(filepath.Join(dir, "audit.jsonl"), func(e audit.Entry) error { es = append(es, e); return nil }, nil)
		return len(es) >= 3
	})
	var will, retained, write bool
	for _, e := range es {
		pr := e.Principal
		switch {
		case pr == nil:
		case e.Refused && pr.User == "viewer" && strings.Contains(e.Reason, "will"):
			will = true
		case e.Refused && pr.User == "scada" && strings.Contains(e.Reason, "retained"):
			retained = true
		case e.OK && pr.User == "scada" && pr.ClientID == "hmi-3" && pr.Protocol == "json" && e.Tag == "level_sp":
			write = true
		}
	}
	if !will || !retained || !write {
		t.Fatalf("audit (will %v, retained %v, write %v):\n%+v", will, retained, write, es)
	}
	if v := p.Value(0).Value; v != 3.5 {
		t.Fatalf("level_sp %v", v)
	}
}
