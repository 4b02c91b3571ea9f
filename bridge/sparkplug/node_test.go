package sparkplug_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/sparkplug"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

var outage = flag.Duration("sparkplug.outage", 30*time.Second, "how long the broker is down in the store-and-forward test (-short: 3s)")

func f64(v float64) *float64 { return &v }

// plantConfig is a small plant: one device with two tags, three internal tags.
func plantConfig() *configs.Config {
	return &configs.Config{
		Devices: []configs.Device{{Name: "rio1", Tags: []configs.IOTag{
			{Name: "level", Area: configs.AreaInput, Address: 0, Type: tag.Float32, Deadband: 0.5},
			{Name: "pump", Area: configs.AreaCoil, Address: 0},
		}}},
		Tags: []configs.Tag{
			{Name: "setpoint", Type: tag.Float64, Writable: true, Min: f64(0), Max: f64(100), Initial: configs.Value{Raw: "50", Set: true}},
			{Name: "mode", Type: tag.Int16, Writable: true},
			{Name: "alarm", Type: tag.Bool},
		},
	}
}

const (
	idLevel tag.ID = iota
	idPump
	idSetpoint
	idMode
	idAlarm
)

type msg struct {
	topic string
	pl    *sproto.Payload
	raw   []byte
}

// subscribe collects every Sparkplug message on the broker.
func subscribe(t *testing.T, url string, tlsOpts mqttc.Options) chan msg {
	t.Helper()
	return subscribeTo(t, url, tlsOpts, make(chan msg, 10000))
}

func subscribeTo(t *testing.T, url string, tlsOpts mqttc.Options, ch chan msg) chan msg {
	t.Helper()
	o := tlsOpts
	o.Broker = url
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("sub-%d", time.Now().UnixNano())
	}
	h := func(topic string, payload []byte) {
		if strings.Contains(topic, "/STATE/") {
			return
		}
		pl := &sproto.Payload{}
		if err := proto.Unmarshal(payload, pl); err != nil {
			t.Errorf("undecodable payload on %s: %v", topic, err)
		}
		ch <- msg{topic, pl, append([]byte(nil), payload...)}
	}
	o.Default = h
	c, err := mqttc.Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Subscribe(context.Background(), "spBv1.0/#", 1, h); err != nil {
		t.Fatal(err)
	}
	return ch
}

// expect waits for the next message on a topic of the given kind (NBIRTH,
// NDATA, ...), skipping others.
func expect(t *testing.T, ch chan msg, kind string) msg {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-ch:
			if strings.Split(m.topic, "/")[2] == kind {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within 15s", kind)
		}
	}
}

func metric(pl *sproto.Payload, name string, alias uint64) *sproto.Payload_Metric {
	for _, m := range pl.Metrics {
		if (name != "" && m.GetName() == name) || (name == "" && m.Alias != nil && m.GetAlias() == alias) {
			return m
		}
	}
	return nil
}

type rig struct {
	plant *bridgetest.Plant
	node  *sparkplug.Node
	dir   string
	stop  func()
}

func startNode(t *testing.T, url string, dir string, mod func(*sparkplug.Config)) *rig {
	t.Helper()
	p, err := bridgetest.NewPlantFromConfig(plantConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return startNodeOn(t, p, url, dir, mod)
}

func startNodeOn(t *testing.T, p *bridgetest.Plant, url string, dir string, mod func(*sparkplug.Config)) *rig {
	t.Helper()
	cfg := sparkplug.Config{Group: "plant", Node: "edge1", QoS: 1, StoreDir: dir, HealthPeriod: time.Hour,
		MQTT: mqttc.Options{Broker: url, ClientID: "edge1", Timeout: 2 * time.Second}, Backoff: mqttc.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if mod != nil {
		mod(&cfg)
	}
	n, err := sparkplug.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx, 5*time.Millisecond)
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	r := &rig{plant: p, node: n, dir: dir}
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	return r
}

func TestBirthDataCommands(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ch := subscribe(t, b.URL(false), mqttc.Options{})
	r := startNode(t, b.URL(false), t.TempDir(), nil)

	nb := expect(t, ch, "NBIRTH")
	if nb.topic != "spBv1.0/plant/NBIRTH/edge1" || nb.pl.GetSeq() != 0 {
		t.Fatalf("NBIRTH %s seq %d", nb.topic, nb.pl.GetSeq())
	}
	for _, name := range []string{"bdSeq", "Node Control/Rebirth", "Node Control/Scan Rate", "setpoint", "mode", "alarm", "Executive/State", "Executive/Tasks/main/Wakeup P99"} {
		if metric(nb.pl, name, 0) == nil {
			t.Errorf("NBIRTH lacks %q", name)
		}
	}
	if sp := metric(nb.pl, "setpoint", 0); sp.GetDoubleValue() != 50 || sp.GetAlias() != uint64(idSetpoint) {
		t.Errorf("setpoint in NBIRTH: %v", sp)
	}
	bdSeq := metric(nb.pl, "bdSeq", 0).GetLongValue()
	decodeRaw(t, nb.raw, "setpoint")

	// the device is bad (never connected): no DBIRTH until it reports
	r.plant.Set(idLevel, 1.0)
	db := expect(t, ch, "DBIRTH")
	if db.topic != "spBv1.0/plant/DBIRTH/edge1/rio1" || metric(db.pl, "level", 0).GetFloatValue() != 1 || db.pl.GetSeq() != 1 {
		t.Fatalf("DBIRTH %s %v", db.topic, db.pl)
	}

	// report by exception with the level's 0.5 deadband
	r.plant.Set(idLevel, 1.3)
	r.plant.Set(idAlarm, 1)
	nd := expect(t, ch, "NDATA")
	if m := metric(nd.pl, "", uint64(idAlarm)); m == nil || !m.GetBooleanValue() || m.Name != nil {
		t.Fatalf("NDATA by alias: %v", nd.pl)
	}
	r.plant.Set(idLevel, 1.9)
	dd := expect(t, ch, "DDATA")
	if m := metric(dd.pl, "", uint64(idLevel)); m == nil || m.GetFloatValue() != float32(1.9) {
		t.Fatalf("DDATA %v", dd.pl)
	}
	if metric(dd.pl, "", uint64(idLevel)) != nil && len(dd.pl.Metrics) != 1 {
		t.Fatalf("DDATA carries unchanged metrics: %v", dd.pl)
	}

	// NCMD write by name, then by alias; out-of-range refused
	cmd := newCommander(t, b.URL(false))
	cmd.send("spBv1.0/plant/NCMD/edge1", &sproto.Payload_Metric{Name: proto.String("setpoint"), Datatype: proto.Uint32(uint32(sproto.DataType_Double)), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 72.5}})
	nd = expect(t, ch, "NDATA")
	if m := metric(nd.pl, "", uint64(idSetpoint)); m == nil || m.GetDoubleValue() != 72.5 {
		t.Fatalf("write not reported: %v", nd.pl)
	}
	cmd.send("spBv1.0/plant/NCMD/edge1", &sproto.Payload_Metric{Alias: proto.Uint64(uint64(idMode)), Datatype: proto.Uint32(uint32(sproto.DataType_Int16)), Value: &sproto.Payload_Metric_IntValue{IntValue: uint32(0xFFFFFFFF)}})
	nd = expect(t, ch, "NDATA")
	if m := metric(nd.pl, "", uint64(idMode)); m == nil || int16(m.GetIntValue()) != -1 {
		t.Fatalf("write by alias not reported: %v", nd.pl)
	}
	cmd.send("spBv1.0/plant/NCMD/edge1", &sproto.Payload_Metric{Name: proto.String("setpoint"), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 500}})
	cmd.send("spBv1.0/plant/DCMD/edge1/rio1", &sproto.Payload_Metric{Name: proto.String("pump"), Datatype: proto.Uint32(uint32(sproto.DataType_Boolean)), Value: &sproto.Payload_Metric_BooleanValue{BooleanValue: true}})
	dd = expect(t, ch, "DDATA")
	if m := metric(dd.pl, "", uint64(idPump)); m == nil || !m.GetBooleanValue() {
		t.Fatalf("DCMD not applied: %v", dd.pl)
	}
	if v := r.plant.Value(idSetpoint).Value; v != 72.5 {
		t.Fatalf("out-of-range write applied: setpoint %v", v)
	}

	// rebirth: NBIRTH again with the same bdSeq and seq 0, then the DBIRTH
	cmd.send("spBv1.0/plant/NCMD/edge1", &sproto.Payload_Metric{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(sproto.DataType_Boolean)), Value: &sproto.Payload_Metric_BooleanValue{BooleanValue: true}})
	nb = expect(t, ch, "NBIRTH")
	if nb.pl.GetSeq() != 0 || metric(nb.pl, "bdSeq", 0).GetLongValue() != bdSeq || metric(nb.pl, "setpoint", 0).GetDoubleValue() != 72.5 {
		t.Fatalf("rebirth %v", nb.pl)
	}
	if db := expect(t, ch, "DBIRTH"); db.pl.GetSeq() != 1 {
		t.Fatalf("DBIRTH after rebirth seq %d", db.pl.GetSeq())
	}

	// the device stops answering: DDEATH; and back: DBIRTH
	r.plant.SetDevice("rio1", tag.Bad, tag.Timeout)
	expect(t, ch, "DDEATH")
	r.plant.SetDevice("rio1", tag.Good, tag.NoReason)
	expect(t, ch, "DBIRTH")
}

type commander struct {
	t *testing.T
	c *mqttc.Conn
}

func newCommander(t *testing.T, url string) *commander {
	c, err := mqttc.Connect(context.Background(), mqttc.Options{Broker: url, ClientID: "host1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &commander{t, c}
}

// state publishes the host scada's retained STATE.
func (c *commander) state(online bool, ts int64) {
	if err := c.c.Publish(context.Background(), mqttc.Message{Topic: "spBv1.0/STATE/scada", QoS: 1, Retain: true,
		Payload: []byte(`{"online":` + strconv.FormatBool(online) + `,"timestamp":` + strconv.FormatInt(ts, 10) + `}`)}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *commander) send(topic string, ms ...*sproto.Payload_Metric) {
	b, _ := proto.Marshal(&sproto.Payload{Timestamp: proto.Uint64(uint64(time.Now().UnixMilli())), Metrics: ms})
	if err := c.c.Publish(context.Background(), mqttc.Message{Topic: topic, QoS: 1, Payload: b}); err != nil {
		c.t.Fatal(err)
	}
}

// decodeRaw checks a payload with an independent decoder: protoc --decode_raw.
func decodeRaw(t *testing.T, raw []byte, want string) {
	t.Helper()
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Log("protoc not installed (Debian protobuf-compiler): independent decode skipped")
		return
	}
	cmd := exec.Command(protoc, "--decode_raw")
	cmd.Stdin = strings.NewReader(string(raw))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("protoc --decode_raw: %v\n%s", err, out)
	}
	// field 2 = metrics, 1 = name; field 3 = seq
	if !strings.Contains(string(out), `1: "`+want+`"`) || !strings.Contains(string(out), "3: 0") {
		t.Fatalf("protoc --decode_raw does not show metric %q / seq 0:\n%s", want, out)
	}
}

// TestMain doubles as the edge node child process of TestNDeathOnKill.
func TestMain(m *testing.M) {
	if url := os.Getenv("MKRT_SPARKPLUG_CHILD"); url != "" {
		p, _ := bridgetest.NewPlantFromConfig(plantConfig(), 0)
		n, err := sparkplug.New(sparkplug.Config{Group: "plant", Node: "edge1", StoreDir: os.Getenv("MKRT_SPARKPLUG_DIR"),
			MQTT: mqttc.Options{Broker: url, ClientID: "edge1", KeepAlive: 60 * time.Second}}, p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n.Run(ctx)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestNDeathOnKill(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ch := subscribe(t, b.URL(false), mqttc.Options{})
	dir := t.TempDir()
	var births []uint64
	for round := 0; round < 2; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MKRT_SPARKPLUG_CHILD="+b.URL(false), "MKRT_SPARKPLUG_DIR="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		nb := expect(t, ch, "NBIRTH")
		bd := metric(nb.pl, "bdSeq", 0).GetLongValue()
		births = append(births, bd)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		nd := expect(t, ch, "NDEATH")
		if nd.topic != "spBv1.0/plant/NDEATH/edge1" || len(nd.pl.Metrics) != 1 || metric(nd.pl, "bdSeq", 0).GetLongValue() != bd {
			t.Fatalf("NDEATH after kill -9: %s %v, want bdSeq %d", nd.topic, nd.pl, bd)
		}
	}
	if births[1] != (births[0]+1)%256 {
		t.Fatalf("bdSeq across restarts: %v (want consecutive)", births)
	}
}

func TestStoreAndForward(t *testing.T) {
	// A historian's persistent session keeps what is published before it reconnects.
	b := bridgetest.MosquittoWith(t, bridgetest.MosquittoOptions{Persist: true})
	dir := t.TempDir()
	hist := mqttc.Options{ClientID: "historian", Persistent: true}
	ch := subscribe(t, b.URL(false), hist)
	r := startNode(t, b.URL(false), dir, nil)
	expect(t, ch, "NBIRTH")

	down := *outage
	if testing.Short() {
		down = 3 * time.Second
	}
	b.Shutdown()
	const step = 100 * time.Millisecond
	n := int(down / step)
	for i := 1; i <= n; i++ {
		r.plant.Set(idSetpoint, float64(i))
		time.Sleep(step)
	}
	// half-way through the outage the bridge itself restarts: the buffer is on disk
	r.stop()
	r.plant.Set(idSetpoint, float64(n+1)) // with no bridge running only the last value is seen
	r = startNodeOn(t, r.plant, b.URL(false), dir, nil)
	time.Sleep(300 * time.Millisecond) // the restarted node buffers while the broker is down
	r.plant.Set(idSetpoint, float64(n+2))
	time.Sleep(100 * time.Millisecond)
	b.Start()
	subscribeTo(t, b.URL(false), hist, ch)
	expect(t, ch, "NBIRTH")
	var got []float64
	deadline := time.After(30 * time.Second)
	for len(got) == 0 || got[len(got)-1] < float64(n+2) {
		select {
		case m := <-ch:
			if !strings.Contains(m.topic, "/NDATA/") {
				continue
			}
			for _, mt := range m.pl.Metrics {
				if mt.GetAlias() == uint64(idSetpoint) {
					if !mt.GetIsHistorical() {
						t.Fatalf("buffered value %v not marked is_historical", mt.GetDoubleValue())
					}
					got = append(got, mt.GetDoubleValue())
				}
			}
		case <-deadline:
			t.Fatalf("got %d of the buffered changes: %v", len(got), got)
		}
	}
	// every change made while the broker was down arrives, in order
	// (the value current at the restart may be reported a second time).
	want := 1.0
	for _, v := range got {
		if v == want-1 {
			continue
		}
		if v != want {
			t.Fatalf("change %v arrived where %v was due: %v", v, want, got)
		}
		want++
	}
	if want-1 != float64(n+2) {
		t.Fatalf("only %v of %d changes delivered", want-1, n+2)
	}
	if st := r.node.Status(); st.Dropped != 0 {
		t.Fatalf("dropped %d", st.Dropped)
	}
	t.Logf("outage %v: %d buffered changes delivered in order", down, len(got))
}

func TestPrimaryHostGatesBirth(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ch := subscribe(t, b.URL(false), mqttc.Options{})
	host := newCommander(t, b.URL(false))
	state := host.state
	state(false, 1)
	r := startNode(t, b.URL(false), t.TempDir(), func(c *sparkplug.Config) { c.PrimaryHost = "scada" })
	time.Sleep(500 * time.Millisecond)
	select {
	case m := <-ch:
		t.Fatalf("published %s while the primary host is offline", m.topic)
	default:
	}
	if r.node.Status().Born {
		t.Fatal("born while the primary host is offline")
	}
	state(true, 2)
	nb := expect(t, ch, "NBIRTH")
	bd := metric(nb.pl, "bdSeq", 0).GetLongValue()
	state(false, 3)
	nd := expect(t, ch, "NDEATH")
	if metric(nd.pl, "bdSeq", 0).GetLongValue() != bd {
		t.Fatalf("NDEATH bdSeq %v want %d", nd.pl, bd)
	}
	state(true, 1) // stale state from another cluster node: ignored
	state(true, 4)
	nb = expect(t, ch, "NBIRTH")
	if got := metric(nb.pl, "bdSeq", 0).GetLongValue(); got != (bd+1)%256 {
		t.Fatalf("new session bdSeq %d want %d", got, bd+1)
	}
}

func TestIntegrityPeriodRepublishes(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ch := subscribe(t, b.URL(false), mqttc.Options{})
	startNode(t, b.URL(false), t.TempDir(), func(c *sparkplug.Config) { c.IntegrityPeriod = 300 * time.Millisecond })
	expect(t, ch, "NBIRTH")
	// nothing changes, yet every node metric is reported again
	nd := expect(t, ch, "NDATA")
	for _, id := range []tag.ID{idSetpoint, idMode, idAlarm} {
		if metric(nd.pl, "", uint64(id)) == nil {
			t.Fatalf("integrity NDATA lacks alias %d: %v", id, nd.pl)
		}
	}
}
