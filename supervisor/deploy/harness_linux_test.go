package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/goburrow/modbus"
	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/deploy"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// The end-to-end tests run the demo plant for real: the mkrt binary built
// once per run (the process backend re-executes it as `mkrt executive`),
// the tank simulator in-process, deploy.Run with its embedded broker or a
// mosquitto, Modbus and the control socket on ports picked at run time.

const exampleConfig = "../../configs/examples/tank-level.yaml"

var mkrtBin struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mkrtBin.dir != "" {
		os.RemoveAll(mkrtBin.dir)
	}
	os.Exit(code)
}

// mkrtBinary builds cmd/mkrt once per test run; it skips the test when
// there is no go tool to build it with.
func mkrtBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: no go tool on PATH to build the mkrt binary the process backend runs (%v)", err)
	}
	mkrtBin.once.Do(func() {
		mkrtBin.dir, mkrtBin.err = os.MkdirTemp("", "mkrt-e2e-bin-")
		if mkrtBin.err != nil {
			return
		}
		mkrtBin.path = filepath.Join(mkrtBin.dir, "mkrt")
		out, err := exec.Command(goTool, "build", "-o", mkrtBin.path, "github.com/mkrt/mkrt/cmd/mkrt").CombinedOutput()
		if err != nil {
			mkrtBin.err = fmt.Errorf("go build ./cmd/mkrt: %w\n%s", err, out)
		}
	})
	if mkrtBin.err != nil {
		t.Fatal(mkrtBin.err)
	}
	return mkrtBin.path
}

// plantOptions shape one test plant.
type plantOptions struct {
	level  float64 // the tank's level at start, m
	sp     float64 // level_sp's initial value, m
	speed  float64 // simulator speed; default 60
	broker string  // "" for the embedded broker, else a broker URL
	// simHost is the simulator's listen address (default 127.0.0.1); with
	// nic set the executive reaches it through that NIC.
	simHost string
	nic     *configNIC
	// noRun: write the config and start the simulator only.
	noRun bool
	// standbyCPUs is partition.standby_cpus ("" leaves it out).
	standbyCPUs string
	// handOverTimeout is deploy.Options.HandOverTimeout.
	handOverTimeout time.Duration
	// edit rewrites the config text last (another backend).
	edit func(cfg string) string
	// kexec is deploy.Options.Kexec (a fake kernel); jailhouse
	// deploy.Options.Jailhouse (a fake hypervisor).
	kexec     kexec.Host
	jailhouse jailhouse.Host
}

type configNIC struct{ iface, address string }

// testPlant is one running deployment of the tank example.
type testPlant struct {
	t                *testing.T
	opts             plantOptions
	name, dir        string
	cfgPath, sock    string
	stateDir, region string
	cfgText          string
	mqttAddr, modbus string
	sim              *sim.Server
	client           *control.Client
	log              *syncBuffer
	cancel           context.CancelFunc
	done             chan error
	ready            deploy.Ready
	stopped          bool
}

// newPlant writes the config, starts the simulator and (unless noRun)
// runs the deployment until it is ready.
func newPlant(t *testing.T, o plantOptions) *testPlant {
	t.Helper()
	if o.speed == 0 {
		o.speed = 60
	}
	if o.simHost == "" {
		o.simHost = "127.0.0.1"
	}
	p := &testPlant{t: t, opts: o, name: "e2e-" + randHex(t, 3), dir: t.TempDir(), log: &syncBuffer{}}
	p.sock = filepath.Join(p.dir, "ctl.sock")
	p.stateDir = filepath.Join(p.dir, "state")
	p.region = "/dev/shm/mkrt-" + p.name
	p.client = control.NewClient(p.sock)

	tank := sim.NewTank()
	tank.Level = o.level
	simCtx, stopSim := context.WithCancel(context.Background())
	srv, err := sim.Start(simCtx, tank, sim.Config{Listen: o.simHost + ":0", Speed: o.speed})
	if err != nil {
		stopSim()
		t.Fatalf("tank simulator: %v", err)
	}
	p.sim = srv
	t.Cleanup(func() { srv.Close(); stopSim() })

	text, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(deploy.WithoutStandby(string(text)))
	p.mqttAddr = fmt.Sprintf("127.0.0.1:%d", bridgetest.FreePort(t))
	p.modbus = fmt.Sprintf("127.0.0.1:%d", bridgetest.FreePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", bridgetest.FreePort(t))
	cfg := replaceOnce(t, string(text),
		"name: tank-level", "name: "+p.name,
		"address: 127.0.0.1:15020", "address: "+srv.Addr(),
		"initial: 2.5", fmt.Sprintf("initial: %g", o.sp),
		"listen: 127.0.0.1:11883", "listen: "+p.mqttAddr,
		"listen: 127.0.0.1:15021", "listen: "+p.modbus,
		"listen: 127.0.0.1:9102", "listen: "+metrics,
		"listen: 127.0.0.1:18080", fmt.Sprintf("listen: 127.0.0.1:%d", bridgetest.FreePort(t)),
		// The PID starts at the valve position that holds the level at the
		// setpoint with the outflow valve at 50 % (10·v/100 = 8·0.5·√sp), so
		// the loop does not wait minutes for its integral to wind up.
		"td: 0s", fmt.Sprintf("td: 0s\n          bias: %.1f", 40*math.Sqrt(o.sp)),
		// The machine running the tests is shared: a restarted executive's
		// first cycles can overrun three times in a row while the other
		// packages' tests load both cores, which would (rightly) put the
		// outputs in their safe state and stop the control the tests watch.
		"overruns: 3", "overruns: 10",
	)
	if o.broker != "" {
		cfg = replaceOnce(t, cfg, "broker: embedded", "broker: "+o.broker)
		cfg = replaceOnce(t, cfg, "    listen: "+p.mqttAddr+"\n", "")
		p.mqttAddr = strings.TrimPrefix(o.broker, "tcp://")
	}
	if o.standbyCPUs != "" {
		cfg = replaceOnce(t, cfg, `  cpus: "1"`+"\n", fmt.Sprintf("  cpus: \"1\"\n  standby_cpus: %q\n", o.standbyCPUs))
	}
	if o.nic != nil {
		cfg = replaceOnce(t, cfg, `  cpus: "1"`+"\n", fmt.Sprintf("  cpus: \"1\"\n  nics:\n    - interface: %s\n      address: %s\n", o.nic.iface, o.nic.address))
	}
	if o.edit != nil {
		cfg = o.edit(cfg)
	}
	p.cfgText = cfg
	p.cfgPath = filepath.Join(p.dir, p.name+".yaml")
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deployment log of %s:\n%s", p.name, p.log.String())
		}
	})
	// Registered before anything runs, so it runs last: a control program
	// that outlived a killed mkrt run must not hold its CPUs into the next
	// test.
	t.Cleanup(func() { p.stopLeftover() })
	if o.noRun {
		return p
	}
	p.start()
	return p
}

// start runs deploy.Run and waits for its Ready.
func (p *testPlant) start() {
	t := p.t
	t.Helper()
	bin := mkrtBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done, p.stopped = cancel, make(chan error, 1), false
	readyc := make(chan deploy.Ready, 1)
	o := deploy.Options{
		ConfigPath: p.cfgPath, StateDir: p.stateDir, Socket: p.sock, Executable: bin, HandOverTimeout: p.opts.handOverTimeout, Kexec: p.opts.kexec, Jailhouse: p.opts.jailhouse,
		Log:   slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Ready: func(r deploy.Ready) { readyc <- r },
	}
	go func() { p.done <- deploy.Run(ctx, o) }()
	t.Cleanup(func() { p.stop() })
	select {
	case p.ready = <-readyc:
	case err := <-p.done:
		p.stopped = true
		t.Fatalf("deploy.Run returned before the partition was up: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("partition %s not up within 60s", p.name)
	}
}

// stop cancels the deployment and returns what Run returned.
func (p *testPlant) stop() error {
	if p.stopped || p.done == nil {
		return nil
	}
	p.stopped = true
	p.cancel()
	select {
	case err := <-p.done:
		return err
	case <-time.After(45 * time.Second):
		p.t.Errorf("deploy.Run did not return within 45s of its context ending")
		return errors.New("deploy.Run did not return")
	}
}

// status asks the control socket.
func (p *testPlant) status() supervisor.Status {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := p.client.Status(ctx)
	if err != nil {
		p.t.Fatalf("mkrt status: %v", err)
	}
	return st
}

// tag reads one tag through the control socket.
func (p *testPlant) tag(name string) control.TagValue {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tags, err := p.client.Tags(ctx)
	if err != nil {
		p.t.Fatalf("mkrt tags: %v", err)
	}
	for _, tv := range tags {
		if tv.Name == name {
			return tv
		}
	}
	p.t.Fatalf("no tag %q", name)
	return control.TagValue{}
}

// good reads a tag that must be good.
func (p *testPlant) good(name string) (float64, bool) {
	tv := p.tag(name)
	return tv.Value, tv.Quality == "good"
}

// waitSettled waits until the level stays within tol of sp for hold.
func (p *testPlant) waitSettled(sp, tol float64, hold, within time.Duration) {
	p.t.Helper()
	var since time.Time
	var last float64
	eventually(p.t, within, fmt.Sprintf("level settled at %g±%g m for %v", sp, tol, hold), func() (bool, string) {
		lv, ok := p.good("level")
		last = lv
		if !ok || math.Abs(lv-sp) > tol {
			since = time.Time{}
			return false, fmt.Sprintf("level %.3f m (good %v)", lv, ok)
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) >= hold, fmt.Sprintf("level %.3f m", lv)
	})
	p.t.Logf("level %.3f m, settled on setpoint %g m", last, sp)
}

// regionReader maps the deployment's region read-only for heartbeats.
func (p *testPlant) regionReader() *shm.Reader {
	p.t.Helper()
	return p.regionAt(p.region)
}

// regionAt maps the region at path read-only.
func (p *testPlant) regionAt(path string) *shm.Reader {
	p.t.Helper()
	reg, err := shm.Open(shm.File(path, 0, false))
	if err != nil {
		p.t.Fatalf("open region: %v", err)
	}
	p.t.Cleanup(func() { reg.Close() })
	r, err := shm.AttachReader(reg, nil, shm.ReaderOptions{})
	if err != nil {
		p.t.Fatalf("attach region: %v", err)
	}
	return r
}

// eventually polls cond every 20ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	last := ""
	for {
		ok, state := cond()
		if ok {
			t.Logf("%s: after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func replaceOnce(t *testing.T, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("example config: %q occurs %d times, want once (did %s change?)", pairs[i], n, exampleConfig)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for the deployment's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// message is one MQTT message as a subscriber saw it.
type message struct {
	topic   string
	payload []byte
	at      time.Time
}

// subscriber records every message on its topics.
type subscriber struct {
	c    mqtt.Client
	mu   sync.Mutex
	msgs []message
}

func subscribe(t *testing.T, addr, user, pass string, topics ...string) *subscriber {
	t.Helper()
	s := &subscriber{}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("e2e-sub-" + randHex(t, 4)).
		SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt subscriber: connect %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	for _, tp := range topics {
		tok := s.c.Subscribe(tp, 1, func(_ mqtt.Client, m mqtt.Message) {
			s.mu.Lock()
			s.msgs = append(s.msgs, message{m.Topic(), append([]byte(nil), m.Payload()...), time.Now()})
			s.mu.Unlock()
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("mqtt subscriber: subscribe %s: %v", tp, tok.Error())
		}
	}
	return s
}

// since returns the messages on topic received at or after t0.
func (s *subscriber) since(topic string, t0 time.Time) []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []message
	for _, m := range s.msgs {
		if m.topic == topic && !m.at.Before(t0) {
			out = append(out, m)
		}
	}
	return out
}

// publishNCMD writes one double metric with a Sparkplug NCMD.
func publishNCMD(t *testing.T, addr, user, pass, topic, metric string, v float64) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("e2e-host-" + randHex(t, 4)).
		SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt host: connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	ts := uint64(time.Now().UnixMilli())
	dt := uint32(sproto.DataType_Double)
	pl := &sproto.Payload{Timestamp: &ts, Metrics: []*sproto.Payload_Metric{{
		Name: &metric, Timestamp: &ts, Datatype: &dt, Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: v},
	}}}
	b, err := proto.Marshal(pl)
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Publish(topic, 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt host: publish %s: %v", topic, tok.Error())
	}
}

// decodeSparkplug decodes a Sparkplug B payload.
func decodeSparkplug(t *testing.T, b []byte) *sproto.Payload {
	t.Helper()
	pl := &sproto.Payload{}
	if err := proto.Unmarshal(b, pl); err != nil {
		t.Fatalf("undecodable Sparkplug payload: %v", err)
	}
	return pl
}

// modbusWriteFloat writes a float32 (ABCD) to two holding registers.
func modbusWriteFloat(t *testing.T, addr string, reg uint16, v float32) {
	t.Helper()
	h := modbus.NewTCPClientHandler(addr)
	h.Timeout, h.SlaveId = 5*time.Second, 1
	if err := h.Connect(); err != nil {
		t.Fatalf("modbus: connect %s: %v", addr, err)
	}
	defer h.Close()
	b := binary.BigEndian.AppendUint32(nil, math.Float32bits(v))
	if _, err := modbus.NewClient(h).WriteMultipleRegisters(reg, 2, b); err != nil {
		t.Fatalf("modbus: write holding %d: %v", reg, err)
	}
}

// modbusReadFloat reads a float32 (ABCD) from two holding registers.
func modbusReadFloat(t *testing.T, addr string, reg uint16) float64 {
	t.Helper()
	h := modbus.NewTCPClientHandler(addr)
	h.Timeout, h.SlaveId = 5*time.Second, 1
	if err := h.Connect(); err != nil {
		t.Fatalf("modbus: connect %s: %v", addr, err)
	}
	defer h.Close()
	b, err := modbus.NewClient(h).ReadHoldingRegisters(reg, 2)
	if err != nil || len(b) != 4 {
		t.Fatalf("modbus: read holding %d: %v (%d bytes)", reg, err, len(b))
	}
	return float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
}

// stopLeftover runs mkrt stop when a partition record is left (its mkrt
// run was killed and nothing adopted the partition since).
func (p *testPlant) stopLeftover() {
	if _, err := os.Stat(filepath.Join(p.stateDir, "partition.json")); err != nil {
		return
	}
	out, err := exec.Command(mkrtBin.path, "stop", p.name, "--state-dir", p.stateDir, "--socket", p.sock).CombinedOutput()
	if err != nil {
		p.t.Logf("mkrt stop of the leftover partition: %v\n%s", err, out)
	}
}
