package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

func f64(v float64) *float64 { return &v }

// TestEndToEnd runs the whole bridge — embedded broker, Sparkplug, JSON,
// Modbus, metrics — over the fake plant.
func TestEndToEnd(t *testing.T) {
	mbPort := bridgetest.FreePort(t)
	cfg := &configs.Config{
		Metadata: configs.Metadata{Name: "tank1", Site: "plantA"},
		Tags: []configs.Tag{
			{Name: "setpoint", Writable: true, Min: f64(0), Max: f64(100), Initial: configs.Value{Raw: "50", Set: true}},
			{Name: "level", Initial: configs.Value{Raw: "1.25", Set: true}},
		},
		Bridge: configs.Bridge{
			MQTT: configs.MQTT{Listen: "127.0.0.1:0", Users: []configs.User{
				{Username: "scada", Password: "pw"}, {Username: "viewer", Password: "ro", ReadOnly: true}}},
			Modbus: configs.ModbusServer{Listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(mbPort)), WriteAllow: []string{"127.0.0.1/32"}, Map: []configs.RegisterMap{
				{Tag: "setpoint", Area: configs.AreaHolding, Address: 0, Type: tag.Float32},
			}},
			Metrics: configs.Metrics{Listen: "127.0.0.1:0"},
		},
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
	var st bridge.Status
	for i := 0; ; i++ {
		st = b.Status()
		if st.Sparkplug != nil && st.Sparkplug.Born && st.JSONConnected && st.ModbusListening && st.Metrics != "" {
			break
		}
		if i > 500 {
			t.Fatalf("bridge not up: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := make(chan [2]string, 100)
	viewer, err := mqttc.Connect(ctx, mqttc.Options{Broker: "tcp://" + st.Broker, ClientID: "v", Username: "viewer", Password: "ro"})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	viewer.Subscribe(ctx, "mkrt/tank1/#", 1, func(topic string, p []byte) { got <- [2]string{topic, string(p)} })
	wait := func(topic string) string {
		t.Helper()
		to := time.After(10 * time.Second)
		for {
			select {
			case m := <-got:
				if m[0] == topic {
					return m[1]
				}
			case <-to:
				t.Fatalf("nothing on %s", topic)
			}
		}
	}
	if v := wait("mkrt/tank1/level"); !strings.HasPrefix(v, `{"v":1.25,"q":"good"`) {
		t.Fatalf("level %s", v)
	}
	scada, err := mqttc.Connect(ctx, mqttc.Options{Broker: "tcp://" + st.Broker, ClientID: "s", Username: "scada", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer scada.Close()
	if err := scada.Publish(ctx, mqttc.Message{Topic: "mkrt/tank1/setpoint/set", QoS: 1, Payload: []byte(`{"v":61,"id":"w1"}`)}); err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK    bool
		Cycle uint64
	}
	json.Unmarshal([]byte(wait("mkrt/tank1/setpoint/set/result")), &res)
	if !res.OK || res.Cycle == 0 {
		t.Fatalf("result %+v", res)
	}
	mb, _ := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + st.Modbus, Timeout: 2 * time.Second})
	if err := mb.Open(); err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	// registers come from the latest scan: the write shows within a scan period
	for i := 0; ; i++ {
		v, err := mb.ReadFloat32(0, modbus.HOLDING_REGISTER)
		if err == nil && v == 61 {
			break
		}
		if i > 200 {
			t.Fatalf("modbus sees %v %v", v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := mb.WriteFloat32(0, 12); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + st.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mkrt_bridge_writes_total{component="json",result="ok"} 1`, `mkrt_bridge_writes_total{component="modbus",result="ok"} 1`, `mkrt_executive_state{state="running"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(filepath.Join(dir, "audit.jsonl"))
	defer f.Close()
	var entries []audit.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Entry
		json.Unmarshal(sc.Bytes(), &e)
		entries = append(entries, e)
	}
	if len(entries) != 2 || entries[0].Source != "json" || entries[0].Old != 50.0 || entries[1].Source != "modbus" || entries[1].Old != 61.0 || entries[1].New != 12.0 {
		t.Fatalf("audit %+v", entries)
	}
}
