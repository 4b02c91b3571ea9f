// Package sparkplug is the bridge's Sparkplug B (specification v3.0) edge
// node: it serves the process image to SCADA hosts over MQTT and applies
// their commands.
//
// One edge node per partition: NBIRTH carries every internal tag, the
// executive's health figures, bdSeq and Node Control/Rebirth and Scan Rate;
// each field device is a Sparkplug device (DBIRTH, and DDEATH when all its
// tags turn bad). Data is reported by exception (per-tag deadbands, an
// optional integrity period) with metric aliases and seq 0-255. NDEATH is the
// MQTT will. NCMD/DCMD rebirth and write writable tags by name or alias. With
// a primary host configured the node waits for spBv1.0/STATE/<host> online
// before it births, and re-births when the host comes back. While no broker
// (or host) is reachable, data goes to an on-disk store-and-forward buffer
// and is sent, in order and marked is_historical, after the next birth.
// Switch moves a running node to another plant (the next generation of the
// partition) within its MQTT session: no NDEATH, the same bdSeq, and a
// rebirth only when the metrics changed.
//
// With the embedded broker, NCMD/DCMD come from it in-process
// (Config.Commands) with the publisher's user and client id, which the audit
// records; with an external broker they come from a subscription and the
// publisher is unknown. A retained NCMD/DCMD is never taken as a command. A
// command's writes wait in a bounded queue for a few workers; a write that
// finds it full is refused as busy. Refused commands (undecodable, unknown
// tag, wrong type, busy) are recorded with Config.Refuser. A STATE whose
// timestamp is later than now plus StateSkew is ignored (and logged), so a
// forged far-future STATE cannot silence the genuine host.
//
// It needs an MQTT broker and a writable directory for the buffer.
package sparkplug

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/metrics"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/bridge/store"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Namespace is the Sparkplug B topic namespace.
const Namespace = "spBv1.0"

// Node control metric names.
const (
	MetricBdSeq    = "bdSeq"
	MetricRebirth  = "Node Control/Rebirth"
	MetricScanRate = "Node Control/Scan Rate"
)

// Config is the edge node's identity and behaviour.
type Config struct {
	Group, Node string
	// PrimaryHost gates births on spBv1.0/STATE/<PrimaryHost> online.
	PrimaryHost string
	// Poll is the scan rate of the process image; default 10ms.
	Poll time.Duration
	// IntegrityPeriod republishes every metric at this period; 0: off.
	IntegrityPeriod time.Duration
	// HealthPeriod is how often health figures are compared and published; default 1s.
	HealthPeriod time.Duration
	// QoS of live NDATA/DDATA. Births and DDEATH use QoS 0 and NDEATH
	// QoS 1 as the specification requires; buffered (historical) data is
	// replayed with QoS 1 so a record leaves the buffer only once the
	// broker has it.
	QoS byte
	// MQTT is the session template; the node sets the will.
	MQTT mqttc.Options
	// Backoff between reconnect attempts.
	Backoff mqttc.Backoff
	// StoreDir holds the store-and-forward buffer and bdSeq; StoreMax bounds it.
	StoreDir string
	StoreMax int64
	// WriteTimeout bounds a command's wait for the executive; default 5s.
	WriteTimeout time.Duration
	Log          *slog.Logger
	Clock        func() time.Time
	Counters     *metrics.Counters
	// Commands is the embedded broker's router: NCMD/DCMD are taken from
	// it (with who sent them) instead of from a subscription.
	Commands *broker.Router
	// Refuser records the commands refused before they reach the plant.
	Refuser plant.Refuser
	// StateSkew is how far in the future a STATE timestamp may be (the
	// host's clock ahead of ours); default 30s.
	StateSkew time.Duration
	// Workers apply command writes (default 4); Queue is how many writes
	// may wait for them (default 64).
	Workers, Queue int
}

// Status is what mkrt status shows of the edge node.
type Status struct {
	Connected  bool
	Born       bool
	HostOnline bool
	BdSeq      uint64
	Published  uint64
	Buffered   int // records in the store now
	Dropped    uint64
}

type device struct {
	name  string
	ids   []tag.ID
	alive bool
	born  bool
}

// metricSet is a plant's tags as the node's metrics: a tag's alias is its
// ID; tags of a field device are that Sparkplug device's metrics, the
// others the node's.
type metricSet struct {
	tags   []tag.Info
	devs   []device
	devOf  []int // device index, -1 for node-level tags
	byName map[string]tag.ID
	devIdx map[string]int
}

// newMetricSet groups tags into node-level metrics and devices.
func newMetricSet(tags []tag.Info) (metricSet, error) {
	ms := metricSet{tags: tags, devOf: make([]int, len(tags)), byName: map[string]tag.ID{}, devIdx: map[string]int{}}
	for i, in := range tags {
		ms.byName[in.Name] = tag.ID(i)
		ms.devOf[i] = -1
		if in.Device == "" {
			continue
		}
		d, ok := ms.devIdx[in.Device]
		if !ok {
			if strings.ContainsAny(in.Device, "/+#") {
				return ms, fmt.Errorf("sparkplug: device id %q contains /, + or #", in.Device)
			}
			d = len(ms.devs)
			ms.devIdx[in.Device] = d
			ms.devs = append(ms.devs, device{name: in.Device})
		}
		ms.devOf[i] = d
		ms.devs[d].ids = append(ms.devs[d].ids, tag.ID(i))
	}
	return ms, nil
}

// sameMetrics reports whether ms announces the same metrics as the node's
// births did: the same tags (name, type, device) under the same aliases
// and the same health figures.
func (n *Node) sameMetrics(ms metricSet, figs []plant.Figure) bool {
	if len(ms.tags) != len(n.tags) || len(figs) != len(n.figs) {
		return false
	}
	for i := range ms.tags {
		a, b := &ms.tags[i], &n.tags[i]
		if a.Name != b.Name || a.Type != b.Type || a.Device != b.Device {
			return false
		}
	}
	for i := range figs {
		if figs[i].Name != n.figs[i].Name {
			return false
		}
	}
	return true
}

type inbound struct {
	topic   string
	payload []byte
	retain  bool
	who     plant.Principal
}

// write is one command metric's write, waiting for a worker.
type write struct {
	p    plant.Plant
	w    wire.Command
	name string
	v    float64
	who  plant.Principal
}

// Node is one Sparkplug B edge node.
type Node struct {
	cfg   Config
	p     plant.Plant
	log   *slog.Logger
	now   func() time.Time
	count *metrics.Counters
	st    *store.Store

	metricSet

	cur     []tag.Sample
	curText []string
	pub     []tag.Sample
	pubText []string

	figs, pubFigs []plant.Figure
	figAlias      map[string]uint64
	nextAlias     uint64
	lastHealth    time.Time

	conn       *mqttc.Conn
	born       bool
	hostOnline bool
	hostTS     int64
	seq        uint64
	scan       atomic.Int64
	bdSeq      atomic.Uint64
	rebirth    chan struct{}
	switches   chan switchTo
	stopped    chan struct{} // closed when Run returns

	mu     sync.Mutex
	status Status

	topics struct{ nbirth, ndeath, ndata, ncmd, dcmd, state string }

	inbox  chan inbound // commands and STATE for the run loop
	writes chan write   // command writes for the workers
}

// New builds an edge node serving p.
func New(cfg Config, p plant.Plant) (*Node, error) {
	if cfg.Group == "" || cfg.Node == "" {
		return nil, errors.New("sparkplug: group and node ids are required")
	}
	for _, id := range []string{cfg.Group, cfg.Node, cfg.PrimaryHost} {
		if strings.ContainsAny(id, "/+#") {
			return nil, fmt.Errorf("sparkplug: id %q contains /, + or #", id)
		}
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.HealthPeriod <= 0 {
		cfg.HealthPeriod = time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Counters == nil {
		cfg.Counters = new(metrics.Counters)
	}
	if cfg.StateSkew <= 0 {
		cfg.StateSkew = 30 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	if cfg.StoreDir == "" {
		return nil, errors.New("sparkplug: a store directory is required")
	}
	ms, err := newMetricSet(p.Tags())
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, p: p, log: cfg.Log.With("component", "sparkplug"), now: cfg.Clock, count: cfg.Counters, metricSet: ms,
		figAlias: map[string]uint64{}, rebirth: make(chan struct{}, 1), switches: make(chan switchTo), stopped: make(chan struct{}),
		inbox: make(chan inbound, 1024), writes: make(chan write, cfg.Queue)}
	n.resize()
	n.scan.Store(int64(cfg.Poll))
	base := Namespace + "/" + cfg.Group + "/"
	n.topics.nbirth = base + "NBIRTH/" + cfg.Node
	n.topics.ndeath = base + "NDEATH/" + cfg.Node
	n.topics.ndata = base + "NDATA/" + cfg.Node
	n.topics.ncmd = base + "NCMD/" + cfg.Node
	n.topics.dcmd = base + "DCMD/" + cfg.Node + "/+"
	if cfg.PrimaryHost != "" {
		n.topics.state = Namespace + "/STATE/" + cfg.PrimaryHost
	}
	if cfg.Commands != nil {
		for _, f := range []string{n.topics.ncmd, n.topics.dcmd} {
			cfg.Commands.Handle(broker.Route{Filter: f, Protocol: "sparkplug", Deliver: func(m broker.Message) {
				n.take(inbound{topic: m.Topic, payload: m.Payload, who: m.Principal})
			}})
		}
	}
	st, err := store.Open(filepath.Join(cfg.StoreDir, "sparkplug"), cfg.StoreMax, n.log)
	if err != nil {
		return nil, fmt.Errorf("sparkplug: %w", err)
	}
	n.st = st
	n.bdSeq.Store(n.loadBdSeq())
	n.updateStatus()
	return n, nil
}

// resize fits the image buffers to the metric set and numbers the health
// figures' aliases after the tags' again.
func (n *Node) resize() {
	k := len(n.tags)
	n.cur, n.curText, n.pub, n.pubText = make([]tag.Sample, k), make([]string, k), make([]tag.Sample, k), make([]string, k)
	clear(n.figAlias)
	n.nextAlias = uint64(k)
	n.figs, n.pubFigs = n.figs[:0], n.pubFigs[:0]
}

func (n *Node) deviceTopic(kind, dev string) string {
	return Namespace + "/" + n.cfg.Group + "/" + kind + "/" + n.cfg.Node + "/" + dev
}

// Status reports the node's connection and counters.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

func (n *Node) updateStatus() {
	recs, _ := n.st.Len()
	n.mu.Lock()
	n.status = Status{Connected: n.conn != nil, Born: n.born, HostOnline: n.hostOnline, BdSeq: n.bdSeq.Load(),
		Published: n.count.Published.Load(), Buffered: recs, Dropped: n.st.Dropped()}
	n.mu.Unlock()
	n.count.Connected.Store(n.conn != nil)
}

func (n *Node) bdSeqPath() string { return filepath.Join(n.cfg.StoreDir, "sparkplug", "bdseq") }

// loadBdSeq reads the bdSeq of the last session, so the next one follows it
// across restarts (-1 mod 256 when there is none, so the first is 0).
func (n *Node) loadBdSeq() uint64 {
	b, err := os.ReadFile(n.bdSeqPath())
	if err != nil {
		return 255
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 255
	}
	return v
}

// nextSession advances bdSeq for a new MQTT session and persists it.
func (n *Node) nextSession() mqttc.Options {
	bd := (n.bdSeq.Load() + 1) % 256
	n.bdSeq.Store(bd)
	if err := os.WriteFile(n.bdSeqPath(), []byte(strconv.FormatUint(bd, 10)+"\n"), 0o640); err != nil {
		n.log.Warn("sparkplug: cannot persist bdSeq", "err", err)
	}
	o := n.cfg.MQTT
	o.Log = n.log
	o.Will = &mqttc.Message{Topic: n.topics.ndeath, QoS: 1, Retain: false, Payload: n.deathPayload(bd)}
	return o
}

func (n *Node) deathPayload(bd uint64) []byte {
	dt := uint32(sproto.DataType_UInt64)
	pl := &sproto.Payload{Timestamp: u64(uint64(n.now().UnixMilli())), Metrics: []*sproto.Payload_Metric{{
		Name: str(MetricBdSeq), Datatype: &dt, Value: &sproto.Payload_Metric_LongValue{LongValue: bd}}}}
	b, _ := proto.Marshal(pl)
	return b
}

// Rebirth asks the node to publish its births again.
func (n *Node) Rebirth() {
	select {
	case n.rebirth <- struct{}{}:
	default:
	}
}

// switchTo is a Switch handed to the run loop; done closes once it is served.
type switchTo struct {
	p    plant.Plant
	ms   metricSet
	done chan struct{}
}

// Switch makes the running node serve p in place of its plant (a new
// generation of the partition) without ending its MQTT session: no NDEATH,
// bdSeq unchanged. When p's metrics are the ones the node announced (same
// tag names, types, devices and aliases, same health figures) data simply
// continues as NDATA/DDATA against what was last reported. Otherwise the
// node rebirths as the specification's rebirth requires (v3.0,
// operational-behavior-data-commands-rebirth-action-1..3): DDEATH for the
// devices that are gone, then one NBIRTH with seq 0 and the same bdSeq
// carrying the new metrics, then a DBIRTH for every live device. A node
// that is not born (no broker, or its primary host offline) births with the
// new metrics when it next can. Switch waits, bounded by ctx, until the run
// loop has switched; it fails when Run is not running.
func (n *Node) Switch(ctx context.Context, p plant.Plant) error {
	ms, err := newMetricSet(p.Tags())
	if err != nil {
		return err
	}
	req := switchTo{p: p, ms: ms, done: make(chan struct{})}
	select {
	case n.switches <- req:
	case <-n.stopped:
		return errors.New("sparkplug: switch: the node is not running")
	case <-ctx.Done():
		return fmt.Errorf("sparkplug: switch: %w", ctx.Err())
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sparkplug: switch: waiting for the rebirth: %w", ctx.Err())
	}
}

// serveSwitch is Switch in the run loop.
func (n *Node) serveSwitch(ctx context.Context, r switchTo) {
	defer close(r.done)
	figs := r.p.Health().Figures(nil)
	n.p = r.p
	if n.sameMetrics(r.ms, figs) {
		// limits, deadbands and access may differ; the metrics do not
		n.tags = r.ms.tags
		n.log.Info("sparkplug: switched to a new plant with the same metrics")
		return
	}
	if n.born {
		for d := range n.devs {
			if _, ok := r.ms.devIdx[n.devs[d].name]; !ok && n.devs[d].born {
				n.ddeath(ctx, d)
			}
		}
	}
	n.metricSet = r.ms
	n.resize()
	n.log.Info("sparkplug: switched to a new plant with other metrics", "tags", len(n.tags), "devices", len(n.devs), "rebirth", n.born)
	if n.born {
		n.birth(ctx)
	} else {
		n.poll(false)
	}
}

// Run serves until ctx ends. The store is closed when it returns.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.stopped)
	defer n.st.Close()
	sessions := make(chan *mqttc.Conn)
	handler := func(m mqttc.Message) {
		in := inbound{topic: m.Topic, payload: m.Payload, retain: m.Retain, who: broker.External("sparkplug", m.Topic)}
		if m.Topic == n.topics.state {
			select { // STATE is never dropped: wait for the run loop
			case n.inbox <- in:
			case <-ctx.Done():
			}
			return
		}
		n.take(in)
	}
	var wg sync.WaitGroup
	for range n.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); n.serveWrites(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		mqttc.Run(ctx, n.cfg.Backoff, n.log, n.nextSession, func(ctx context.Context, c *mqttc.Conn) error {
			// Commands and host state are subscribed before the birth so none is missed.
			filters := []string{n.topics.state}
			if n.cfg.Commands == nil {
				filters = append(filters, n.topics.ncmd, n.topics.dcmd)
			}
			for _, f := range filters {
				if f == "" {
					continue
				}
				if err := c.SubscribeMessages(ctx, f, 1, handler); err != nil {
					return err
				}
			}
			select {
			case sessions <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			err := c.Hold(ctx)
			if ctx.Err() != nil {
				// A clean stop says goodbye the way the will would, here,
				// before mqttc.Run closes the session (a DISCONNECT drops
				// the will); a loaded broker gets a few seconds to ack it.
				pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				if perr := c.Publish(pctx, mqttc.Message{Topic: n.topics.ndeath, QoS: 1, Payload: n.deathPayload(n.bdSeq.Load())}); perr != nil {
					n.log.Warn("sparkplug: NDEATH on stop not delivered", "err", perr)
				}
				cancel()
			}
			return err
		})
	}()
	defer wg.Wait()

	// The image is read once before any session so births carry values.
	n.poll(false)
	poll := time.NewTicker(time.Duration(n.scan.Load()))
	defer poll.Stop()
	syncT := time.NewTicker(100 * time.Millisecond)
	defer syncT.Stop()
	var integrity <-chan time.Time
	if n.cfg.IntegrityPeriod > 0 {
		t := time.NewTicker(n.cfg.IntegrityPeriod)
		defer t.Stop()
		integrity = t.C
	}
	scan := n.scan.Load()
	for {
		var lost <-chan struct{}
		if n.conn != nil {
			lost = n.conn.Lost()
		}
		select {
		case <-ctx.Done():
			// The session goroutine publishes NDEATH and closes the session.
			n.st.Sync()
			return nil
		case c := <-sessions:
			// The host's last known STATE carries over: its retained STATE may
			// reach the inbox before this session does; a newer offline STATE
			// ends the session again.
			n.conn, n.born, n.seq = c, false, 0
			if n.topics.state == "" || n.hostOnline {
				n.birth(ctx)
			}
		case <-lost:
			n.log.Warn("sparkplug: connection lost", "err", n.conn.Err())
			n.conn, n.born = nil, false
		case m := <-n.inbox:
			n.handle(ctx, m)
		case <-n.rebirth:
			if n.born {
				n.birth(ctx)
			}
		case r := <-n.switches:
			n.serveSwitch(ctx, r)
		case <-poll.C:
			n.poll(true)
			if s := n.scan.Load(); s != scan {
				scan = s
				poll.Reset(time.Duration(s))
			}
		case <-integrity:
			n.integrity()
		case <-syncT.C:
			if err := n.st.Sync(); err != nil {
				n.log.Error("sparkplug: store sync", "err", err)
			}
		}
		n.updateStatus()
	}
}

// birth publishes NBIRTH and the DBIRTHs, then replays the buffer.
func (n *Node) birth(ctx context.Context) {
	n.seq = 0
	n.poll(false)
	n.figs = n.p.Health().Figures(n.figs)
	n.pubFigs = append(n.pubFigs[:0], n.figs...)
	n.lastHealth = n.now()
	ts := uint64(n.now().UnixMilli())
	pl := &sproto.Payload{Timestamp: &ts}
	dt := func(d sproto.DataType) *uint32 { v := uint32(d); return &v }
	pl.Metrics = append(pl.Metrics,
		&sproto.Payload_Metric{Name: str(MetricBdSeq), Timestamp: &ts, Datatype: dt(sproto.DataType_UInt64), Value: &sproto.Payload_Metric_LongValue{LongValue: n.bdSeq.Load()}},
		&sproto.Payload_Metric{Name: str(MetricRebirth), Timestamp: &ts, Datatype: dt(sproto.DataType_Boolean), Value: &sproto.Payload_Metric_BooleanValue{BooleanValue: false}},
		&sproto.Payload_Metric{Name: str(MetricScanRate), Timestamp: &ts, Datatype: dt(sproto.DataType_Int64), Value: &sproto.Payload_Metric_LongValue{LongValue: uint64(time.Duration(n.scan.Load()).Milliseconds())}},
	)
	for i := range n.tags {
		if n.devOf[i] == -1 {
			m := &sproto.Payload_Metric{}
			tagMetric(m, &n.tags[i], uint64(i), n.cur[i], n.curText[i], true, true)
			pl.Metrics = append(pl.Metrics, m)
			n.pub[i], n.pubText[i] = n.cur[i], n.curText[i]
		}
	}
	for i := range n.figs {
		m := &sproto.Payload_Metric{}
		figureMetric(m, &n.figs[i], n.figureAlias(n.figs[i].Name), ts, true)
		pl.Metrics = append(pl.Metrics, m)
	}
	if !n.send(ctx, n.topics.nbirth, pl, 0) {
		return
	}
	n.born = true
	n.log.Info("sparkplug: NBIRTH", "bdSeq", n.bdSeq.Load(), "metrics", len(pl.Metrics))
	for d := range n.devs {
		n.devs[d].born = false
		if n.devs[d].alive && !n.dbirth(ctx, d) {
			return
		}
	}
	n.replay(ctx)
}

func (n *Node) figureAlias(name string) uint64 {
	a, ok := n.figAlias[name]
	if !ok {
		a = n.nextAlias
		n.nextAlias++
		n.figAlias[name] = a
	}
	return a
}

func (n *Node) dbirth(ctx context.Context, d int) bool {
	ts := uint64(n.now().UnixMilli())
	pl := &sproto.Payload{Timestamp: &ts}
	for _, id := range n.devs[d].ids {
		m := &sproto.Payload_Metric{}
		tagMetric(m, &n.tags[id], uint64(id), n.cur[id], n.curText[id], true, true)
		pl.Metrics = append(pl.Metrics, m)
		n.pub[id], n.pubText[id] = n.cur[id], n.curText[id]
	}
	if !n.send(ctx, n.deviceTopic("DBIRTH", n.devs[d].name), pl, 0) {
		return false
	}
	n.devs[d].born = true
	return true
}

func (n *Node) ddeath(ctx context.Context, d int) {
	ts := uint64(n.now().UnixMilli())
	n.devs[d].born = false
	n.send(ctx, n.deviceTopic("DDEATH", n.devs[d].name), &sproto.Payload{Timestamp: &ts}, 0)
}

// send publishes a payload with the next seq. On failure the session is
// dropped (it reconnects) and false is returned.
func (n *Node) send(ctx context.Context, topic string, pl *sproto.Payload, qos byte) bool {
	if n.conn == nil {
		return false
	}
	pl.Seq = u64(n.seq)
	b, err := proto.Marshal(pl)
	if err != nil {
		n.log.Error("sparkplug: marshal", "topic", topic, "err", err)
		return false
	}
	if err := n.conn.Publish(ctx, mqttc.Message{Topic: topic, QoS: qos, Payload: b}); err != nil {
		n.log.Warn("sparkplug: publish failed; reconnecting", "topic", topic, "err", err)
		n.conn.Drop()
		n.conn, n.born = nil, false
		return false
	}
	n.seq = (n.seq + 1) % 256
	n.count.Published.Add(1)
	return true
}

// poll reads the image and, when publish is set, reports what changed.
//
// Hot path: runs every scan over every tag; it allocates nothing when
// nothing changed (TestScanAllocatesNothing).
func (n *Node) poll(publish bool) {
	if _, err := n.p.Snapshot(n.cur, n.curText); err != nil {
		n.log.Warn("sparkplug: snapshot", "err", err)
		return
	}
	for d := range n.devs {
		n.devs[d].alive = false
		for _, id := range n.devs[d].ids {
			if q := n.cur[id].Quality; q == tag.Good || q == tag.Uncertain {
				n.devs[d].alive = true
				break
			}
		}
	}
	if !publish {
		return
	}
	ctx := context.Background()
	ts := n.now()
	// node-level data: internal tags and, at the health period, figures
	var pl *sproto.Payload
	for i := range n.tags {
		if n.devOf[i] == -1 && n.changed(i) {
			pl = n.addTag(pl, i, ts)
		}
	}
	if ts.Sub(n.lastHealth) >= n.cfg.HealthPeriod {
		n.lastHealth = ts
		n.figs = n.p.Health().Figures(n.figs)
		for i := range n.figs {
			if i >= len(n.pubFigs) || n.figs[i] != n.pubFigs[i] {
				if pl == nil {
					pl = &sproto.Payload{Timestamp: u64(uint64(ts.UnixMilli()))}
				}
				m := &sproto.Payload_Metric{}
				name := i >= len(n.pubFigs) || n.figs[i].Name != n.pubFigs[i].Name
				figureMetric(m, &n.figs[i], n.figureAlias(n.figs[i].Name), uint64(ts.UnixMilli()), name)
				pl.Metrics = append(pl.Metrics, m)
			}
		}
		n.pubFigs = append(n.pubFigs[:0], n.figs...)
	}
	if pl != nil {
		n.data(ctx, "", pl)
	}
	for d := range n.devs {
		dev := &n.devs[d]
		if n.born && dev.born && !dev.alive {
			// the device went bad: its metrics are stale for the host
			n.ddeath(ctx, d)
			for _, id := range dev.ids {
				n.pub[id] = n.cur[id]
			}
			continue
		}
		if n.born && !dev.born && dev.alive {
			n.dbirth(ctx, d)
			continue
		}
		var dp *sproto.Payload
		for _, id := range dev.ids {
			if n.changed(int(id)) {
				dp = n.addTag(dp, int(id), ts)
			}
		}
		if dp != nil && (dev.alive || !n.born) {
			n.data(ctx, dev.name, dp)
		}
	}
}

// changed reports whether tag i differs from what was last reported, by
// more than its deadband.
func (n *Node) changed(i int) bool {
	return n.tags[i].Changed(n.cur[i], n.pub[i], n.curText[i], n.pubText[i])
}

func (n *Node) addTag(pl *sproto.Payload, i int, ts time.Time) *sproto.Payload {
	if pl == nil {
		pl = &sproto.Payload{Timestamp: u64(uint64(ts.UnixMilli()))}
	}
	m := &sproto.Payload_Metric{}
	tagMetric(m, &n.tags[i], uint64(i), n.cur[i], n.curText[i], false, n.cur[i].Quality != n.pub[i].Quality)
	pl.Metrics = append(pl.Metrics, m)
	n.pub[i], n.pubText[i] = n.cur[i], n.curText[i]
	return pl
}

// data publishes NDATA/DDATA, or buffers it when the node is not born.
func (n *Node) data(ctx context.Context, dev string, pl *sproto.Payload) {
	if n.born {
		topic := n.topics.ndata
		if dev != "" {
			topic = n.deviceTopic("DDATA", dev)
		}
		if n.send(ctx, topic, pl, n.cfg.QoS) {
			return
		}
	}
	n.buffer(dev, pl)
}

// buffer appends a data payload to the store: [device name length u16][name][payload].
//
// Metrics are buffered with their names as well as their aliases: a Switch
// may renumber the metrics before the record is replayed (see realias).
func (n *Node) buffer(dev string, pl *sproto.Payload) {
	pl.Seq = nil
	for _, m := range pl.Metrics {
		if m.Name == nil {
			if name, ok := n.metricName(m.GetAlias()); ok {
				m.Name = &name
			}
		}
	}
	b, err := proto.Marshal(pl)
	if err != nil {
		return
	}
	rec := make([]byte, 2+len(dev)+len(b))
	binary.LittleEndian.PutUint16(rec, uint16(len(dev)))
	copy(rec[2:], dev)
	copy(rec[2+len(dev):], b)
	if err := n.st.Append(rec); err != nil {
		n.count.Dropped.Add(1)
		if errors.Is(err, store.ErrFull) {
			n.log.Warn("sparkplug: store-and-forward buffer full: data dropped", "dropped", n.st.Dropped())
		} else {
			n.log.Error("sparkplug: store-and-forward", "err", err)
		}
		return
	}
	n.count.Buffered.Add(1)
}

// replay sends the buffered data, oldest first, marked historical. Changes
// made meanwhile are buffered behind it, so order is kept.
func (n *Node) replay(ctx context.Context) {
	recs, _ := n.st.Len()
	if recs == 0 {
		return
	}
	n.log.Info("sparkplug: sending buffered data", "records", recs)
	last := n.now()
	err := n.st.Replay(func(rec []byte) error {
		if len(rec) < 2 || len(rec) < 2+int(binary.LittleEndian.Uint16(rec)) {
			n.log.Error("sparkplug: malformed buffered record skipped")
			return nil
		}
		dl := int(binary.LittleEndian.Uint16(rec))
		dev := string(rec[2 : 2+dl])
		pl := &sproto.Payload{}
		if err := proto.Unmarshal(rec[2+dl:], pl); err != nil {
			n.log.Error("sparkplug: undecodable buffered record skipped", "err", err)
			return nil
		}
		if n.realias(dev, pl); len(pl.Metrics) == 0 {
			return nil
		}
		for _, m := range pl.Metrics {
			m.IsHistorical = boolp(true)
		}
		topic := n.topics.ndata
		if dev != "" {
			topic = n.deviceTopic("DDATA", dev)
		}
		if !n.send(ctx, topic, pl, 1) {
			return errors.New("sparkplug: connection lost during replay")
		}
		n.count.Replayed.Add(1)
		if now := n.now(); now.Sub(last) >= time.Duration(n.scan.Load()) {
			// keep scanning while replaying: new changes queue behind the backlog
			last = now
			born := n.born
			n.born = false
			n.poll(true)
			n.born = born
		}
		return nil
	})
	if err != nil {
		n.log.Warn("sparkplug: replay interrupted", "err", err)
	}
}

// metricName is the name of the metric born with alias a.
func (n *Node) metricName(a uint64) (string, bool) {
	if a < uint64(len(n.tags)) {
		return n.tags[a].Name, true
	}
	for name, fa := range n.figAlias {
		if fa == a {
			return name, true
		}
	}
	return "", false
}

// realias gives a buffered record's metrics the aliases their names have
// in the metrics born now and drops the metrics not born now (on dev, with
// that datatype); it strips the names again, as data messages carry
// aliases only. Metrics buffered without a name keep their alias.
func (n *Node) realias(dev string, pl *sproto.Payload) {
	kept := pl.Metrics[:0]
	for _, m := range pl.Metrics {
		if m.Name != nil {
			var a uint64
			if id, ok := n.byName[m.GetName()]; ok && n.tags[id].Device == dev && sproto.DataType(m.GetDatatype()) == DataType(n.tags[id].Type) {
				a = uint64(id)
			} else if fa, ok := n.figAlias[m.GetName()]; ok && dev == "" {
				a = fa
			} else {
				continue
			}
			m.Alias, m.Name = &a, nil
		}
		kept = append(kept, m)
	}
	pl.Metrics = kept
}

// integrity republishes every metric as data.
func (n *Node) integrity() {
	if !n.born {
		return
	}
	for i := range n.pub {
		n.pub[i].Quality = 255 // forces a report of every tag
	}
	n.pubFigs = n.pubFigs[:0]
	n.lastHealth = time.Time{}
	n.poll(true)
}

// take queues a command for the run loop without blocking the delivering
// goroutine: a retained command, or one that finds the inbox full, is
// refused.
func (n *Node) take(m inbound) {
	switch {
	case m.retain:
		n.refuse(m.who, "", m.payload, "a retained NCMD/DCMD is never taken as a command; publish it without retain")
		return
	}
	select {
	case n.inbox <- m:
	default:
		n.count.CountWrite(ErrBusy)
		n.refuse(m.who, "", m.payload, ErrBusy.Error())
	}
}

// ErrBusy refuses a command that finds the queue of waiting writes full.
var ErrBusy = errors.New("sparkplug: busy: too many command writes waiting; retry later")

func (n *Node) refuse(who plant.Principal, name string, value []byte, reason string) {
	n.log.Warn("sparkplug: command refused", "tag", name, "user", who.User, "client", who.ClientID, "reason", reason)
	plant.Refuse(context.Background(), n.cfg.Refuser, plant.Refusal{Principal: who, Tag: name, Value: broker.Clip(value), Reason: reason})
}

// DecodeCommand decodes an NCMD/DCMD payload.
func DecodeCommand(payload []byte) (*sproto.Payload, error) {
	pl := &sproto.Payload{}
	if err := proto.Unmarshal(payload, pl); err != nil {
		return nil, fmt.Errorf("sparkplug: undecodable command: %w", err)
	}
	return pl, nil
}

// handle processes NCMD, DCMD and STATE messages.
func (n *Node) handle(ctx context.Context, m inbound) {
	if m.topic == n.topics.state {
		n.hostState(ctx, m.payload)
		return
	}
	dev := ""
	if p := n.deviceTopic("DCMD", ""); strings.HasPrefix(m.topic, p) {
		dev = m.topic[len(p):]
	} else if m.topic != n.topics.ncmd {
		return
	}
	pl, err := DecodeCommand(m.payload)
	if err != nil {
		n.count.CountWrite(err)
		n.refuse(m.who, "", m.payload, err.Error())
		return
	}
	for _, mt := range pl.Metrics {
		switch {
		case dev == "" && mt.GetName() == MetricRebirth:
			if mt.GetBooleanValue() {
				n.log.Info("sparkplug: rebirth requested")
				if n.born {
					n.birth(ctx)
				}
			}
		case dev == "" && mt.GetName() == MetricScanRate:
			v, _, err := commandValue(mt, "int64")
			if err != nil || v < 1 || v > 60000 {
				n.log.Warn("sparkplug: bad scan rate", "value", v, "err", err)
				continue
			}
			n.scan.Store(int64(time.Duration(v) * time.Millisecond))
		default:
			n.command(dev, mt, m.who)
		}
	}
}

// command queues a write of one command metric to a tag.
func (n *Node) command(dev string, mt *sproto.Payload_Metric, who plant.Principal) {
	id := tag.ID(-1)
	if mt.Alias != nil && mt.GetAlias() < uint64(len(n.tags)) {
		id = tag.ID(mt.GetAlias())
	} else if v, ok := n.byName[mt.GetName()]; ok {
		id = v
	}
	if id < 0 || n.tags[id].Device != dev {
		n.count.CountWrite(wire.ErrUnknownTag)
		n.refuse(who, mt.GetName(), nil, fmt.Sprintf("no such tag: device %q name %q alias %d: %v", dev, mt.GetName(), mt.GetAlias(), wire.ErrUnknownTag))
		return
	}
	v, s, err := commandValue(mt, n.tags[id].Type)
	if err != nil {
		n.count.CountWrite(wire.ErrWrongType)
		n.refuse(who, n.tags[id].Name, nil, err.Error())
		return
	}
	w := wire.Command{Kind: wire.WriteTag, Tag: id, Value: wire.ValueOf(&n.tags[id], v, s), Origin: wire.NewOrigin("sparkplug:" + n.cfg.Group + "/" + n.cfg.Node + " command")}
	if err := plant.Check(n.tags, &w); err != nil {
		n.count.CountWrite(err)
		n.refuse(who, n.tags[id].Name, []byte(strconv.FormatFloat(v, 'g', -1, 64)), err.Error())
		return
	}
	// a Switch may replace the plant and its tags meanwhile
	select {
	case n.writes <- write{p: n.p, w: w, name: n.tags[id].Name, v: v, who: who}:
	default:
		n.count.CountWrite(ErrBusy)
		n.refuse(who, n.tags[id].Name, []byte(strconv.FormatFloat(v, 'g', -1, 64)), ErrBusy.Error())
	}
}

// serveWrites is a worker: it applies queued command writes until ctx
// ends. The result is logged (and, applied, reported in the next NDATA).
func (n *Node) serveWrites(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case x := <-n.writes:
			wctx, cancel := context.WithTimeout(plant.WithPrincipal(ctx, x.who), n.cfg.WriteTimeout)
			res, err := x.p.Write(wctx, x.w)
			cancel()
			n.count.CountWrite(err)
			if err != nil {
				n.log.Warn("sparkplug: write failed", "tag", x.name, "value", x.v, "user", x.who.User, "err", err)
				continue
			}
			n.log.Info("sparkplug: write applied", "tag", x.name, "value", x.v, "user", x.who.User, "cycle", res.Cycle)
		}
	}
}

// hostState follows the primary host's STATE: births when it is online,
// and a clean death and a new session when it goes offline.
func (n *Node) hostState(ctx context.Context, payload []byte) {
	var st struct {
		Online    bool  `json:"online"`
		Timestamp int64 `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		n.log.Warn("sparkplug: bad STATE payload", "err", err)
		return
	}
	if limit := n.now().Add(n.cfg.StateSkew).UnixMilli(); st.Timestamp > limit {
		// A forged far-future STATE would otherwise hide every genuine one.
		n.log.Warn("sparkplug: STATE ignored: its timestamp is in the future (check the host's clock, or who may publish STATE)",
			"host", n.cfg.PrimaryHost, "timestamp", st.Timestamp, "now", n.now().UnixMilli(), "skew", n.cfg.StateSkew)
		return
	}
	if st.Timestamp < n.hostTS {
		return // an older state delivered late (e.g. by another cluster node)
	}
	n.hostTS = st.Timestamp
	switch {
	case st.Online && !n.hostOnline:
		n.hostOnline = true
		n.log.Info("sparkplug: primary host online", "host", n.cfg.PrimaryHost)
		if n.conn != nil {
			n.birth(ctx)
		}
	case !st.Online && n.hostOnline:
		n.hostOnline = false
		n.log.Warn("sparkplug: primary host offline: ending the session", "host", n.cfg.PrimaryHost)
		if n.conn != nil {
			if n.born {
				n.conn.Publish(ctx, mqttc.Message{Topic: n.topics.ndeath, QoS: 1, Payload: n.deathPayload(n.bdSeq.Load())})
			}
			n.conn.Close()
			n.conn, n.born = nil, false
		}
	}
}

// SetBroker changes the broker URL used from the next connect on (the
// embedded broker's address is known only once it listens). Call before Run.
func (n *Node) SetBroker(url string) { n.cfg.MQTT.Broker = url }
