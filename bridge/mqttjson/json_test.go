package mqttjson_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/mqttjson"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

func f64(v float64) *float64 { return &v }

func testPlant(t testing.TB) *bridgetest.Plant {
	p, err := bridgetest.NewPlantFromConfig(&configs.Config{Tags: []configs.Tag{
		{Name: "setpoint", Writable: true, Min: f64(0), Max: f64(100), Initial: configs.Value{Raw: "50", Set: true}},
		{Name: "running", Type: tag.Bool},
		{Name: "recipe", Type: tag.String, Writable: true, Length: 8},
		{Name: "count", Type: tag.Int32, Writable: true},
	}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppendValueAndParseSet(t *testing.T) {
	in := tag.Info{Name: "x", Type: tag.Int32}
	got := string(mqttjson.AppendValue(nil, &in, tag.Sample{Value: -7, Quality: tag.Good, Time: 1_700_000_000_123_000_000}, ""))
	if got != `{"v":-7,"q":"good","ts":1700000000123}` {
		t.Fatal(got)
	}
	in.Type = tag.Bool
	if got := string(mqttjson.AppendValue(nil, &in, tag.Sample{Value: 1, Quality: tag.Stale}, "")); got != `{"v":true,"q":"stale","ts":0}` {
		t.Fatal(got)
	}
	in.Type = tag.Float64
	for _, c := range []struct {
		in     string
		v      float64
		id     string
		hasErr bool
	}{{"12.5", 12.5, "", false}, {`{"v":3,"id":"a1"}`, 3, "a1", false}, {"true", 1, "", false}, {`"text"`, 0, "", true}, {`{"id":"z"}`, 0, "z", true}, {"{", 0, "", true}, {"null", 0, "", true}} {
		v, _, id, err := mqttjson.ParseSet(&in, []byte(c.in))
		if (err != nil) != c.hasErr || v != c.v || id != c.id {
			t.Errorf("ParseSet(%s) = %v %q %v", c.in, v, id, err)
		}
	}
}

func TestPublishAndSet(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	p := testPlant(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, 5*time.Millisecond)
	j, err := mqttjson.New(mqttjson.Config{Prefix: "mkrt", Node: "edge1", QoS: 1, MQTT: mqttc.Options{Broker: b.URL(false), ClientID: "edge1-json"}}, p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	msgs := make(chan [2]string, 1000)
	c, err := mqttc.Connect(ctx, mqttc.Options{Broker: b.URL(false), ClientID: "nodered"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Subscribe(ctx, "mkrt/edge1/#", 1, func(topic string, payload []byte) { msgs <- [2]string{topic, string(payload)} })
	next := func(topic string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if m[0] == topic {
					return m[1]
				}
			case <-deadline:
				t.Fatalf("nothing on %s", topic)
			}
		}
	}
	if v := next("mkrt/edge1/setpoint"); !strings.HasPrefix(v, `{"v":50,"q":"good","ts":`) {
		t.Fatalf("retained setpoint %s", v)
	}
	var h mqttjson.Health
	json.Unmarshal([]byte(next("mkrt/edge1/$health")), &h)
	if h.State != "running" || len(h.Tasks) != 1 || h.Tasks[0].WakeupNS["p99"] == 0 {
		t.Fatalf("health %+v", h)
	}
	pub := func(topic, payload string) {
		if err := c.Publish(ctx, mqttc.Message{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	result := func(tagName string) mqttjson.Result {
		var r mqttjson.Result
		if err := json.Unmarshal([]byte(next("mkrt/edge1/"+tagName+"/set/result")), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	pub("mkrt/edge1/setpoint/set", `{"v":70,"id":"req-1"}`)
	if r := result("setpoint"); !r.OK || r.ID != "req-1" || r.Cycle == 0 {
		t.Fatalf("result %+v", r)
	}
	if v := next("mkrt/edge1/setpoint"); !strings.HasPrefix(v, `{"v":70,`) {
		t.Fatalf("setpoint after write %s", v)
	}
	pub("mkrt/edge1/count/set", `-12`)
	if r := result("count"); !r.OK {
		t.Fatalf("count %+v", r)
	}
	pub("mkrt/edge1/recipe/set", `"B-7"`)
	if r := result("recipe"); !r.OK || p.Value(2).Quality != tag.Good {
		t.Fatalf("recipe %+v", r)
	}
	for _, c := range []struct{ tag, payload, err string }{
		{"setpoint", `500`, "out of range"},
		{"running", `true`, "not writable"},
		{"count", `1.5`, "type"},
		{"nosuch", `1`, "unknown tag"},
		{"recipe", `"much too long"`, "out of range"},
	} {
		pub("mkrt/edge1/"+c.tag+"/set", c.payload)
		if r := result(c.tag); r.OK || !strings.Contains(r.Error, c.err) {
			t.Errorf("%s <- %s: %+v, want error %q", c.tag, c.payload, r, c.err)
		}
	}
	p.SetState(wire.Safe, "")
	pub("mkrt/edge1/setpoint/set", `10`)
	if r := result("setpoint"); r.OK || !strings.Contains(r.Error, "not running") {
		t.Fatalf("write while safe: %+v", r)
	}
}
