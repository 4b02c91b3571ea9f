// Package mqttjson is the bridge's plain JSON MQTT interface for simple
// consumers (Node-RED, historians): every tag retained on
// <prefix>/<node>/<tag> as {"v":…,"q":"good","ts":…} (ts in Unix
// milliseconds), published by exception; writes through
// <prefix>/<node>/<tag>/set (a JSON value or {"v":…,"id":"…"}) answered on
// <prefix>/<node>/<tag>/set/result with {"id":…,"ok":…,"error":…,"cycle":…};
// the executive's health on <prefix>/<node>/$health and the bridge's
// presence on <prefix>/<node>/$online (retained, "false" as the will).
//
// Switch moves a running publisher to another plant (the next generation of
// the partition) on the same MQTT session: changed and new tags are
// published, the retained topics of tags that are gone are cleared.
//
// With the embedded broker, /set requests come from it in-process
// (Config.Commands) with the publisher's user and client id, which the audit
// records; with an external broker they come from a subscription and the
// publisher is unknown. A retained /set is never taken as a command. Requests
// wait in a bounded queue for a few workers; a request that finds the queue
// full is answered "busy" and recorded as refused, as is any request that
// cannot be decoded or names a tag that cannot be written.
//
// Tag names containing '/', '+' or '#' are published but cannot be written.
// It needs an MQTT broker.
package mqttjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/metrics"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Config is the JSON interface's topics and behaviour.
type Config struct {
	Prefix, Node string
	QoS          byte
	Poll         time.Duration // default 10ms
	HealthPeriod time.Duration // default 1s
	WriteTimeout time.Duration // default 5s
	MQTT         mqttc.Options
	Backoff      mqttc.Backoff
	Log          *slog.Logger
	Clock        func() time.Time
	Counters     *metrics.Counters
	// Commands is the embedded broker's router: /set requests are taken
	// from it (with who sent them) instead of from a subscription.
	Commands *broker.Router
	// Refuser records the requests refused before they reach the plant.
	Refuser plant.Refuser
	// Workers serve /set requests (default 4); Queue is how many may wait
	// for them (default 64).
	Workers, Queue int
}

// Publisher serves the process image as JSON topics.
type Publisher struct {
	cfg   Config
	log   *slog.Logger
	count *metrics.Counters
	base  string
	// v is what the run loop publishes and /set requests (on the session's
	// goroutines) write to; Switch replaces it.
	v atomic.Pointer[view]

	cur, pub         []tag.Sample
	curText, pubText []string
	health           []byte
	lastHealth       time.Time
	full             bool
	inflight         []mqttc.Pending
	// gone are the tags a Switch removed: their retained topics are cleared
	// on the next scan with a session.
	gone []string

	switches chan *view
	stopped  chan struct{} // closed when Run returns

	// cmds are the /set requests waiting for a worker; conn is the session
	// the workers answer on (nil between sessions).
	cmds chan broker.Message
	conn atomic.Pointer[mqttc.Conn]
}

// view is a plant and its tag directory.
type view struct {
	p    plant.Plant
	tags []tag.Info
	ids  map[string]tag.ID
}

func newView(p plant.Plant) *view {
	v := &view{p: p, tags: p.Tags(), ids: map[string]tag.ID{}}
	for i, in := range v.tags {
		v.ids[in.Name] = tag.ID(i)
	}
	return v
}

// Result is the answer to a /set request.
type Result struct {
	ID    string `json:"id,omitempty"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Cycle uint64 `json:"cycle,omitempty"`
}

// New builds a publisher serving p.
func New(cfg Config, p plant.Plant) (*Publisher, error) {
	if cfg.Prefix == "" || cfg.Node == "" {
		return nil, errors.New("mqttjson: prefix and node are required")
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
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	j := &Publisher{cfg: cfg, log: cfg.Log.With("component", "mqttjson"), count: cfg.Counters, base: cfg.Prefix + "/" + cfg.Node + "/",
		switches: make(chan *view), stopped: make(chan struct{}), cmds: make(chan broker.Message, cfg.Queue)}
	if cfg.Commands != nil {
		cfg.Commands.Handle(broker.Route{Filter: j.base + "+/set", Protocol: "json", Tag: j.tagOf, Deliver: func(m broker.Message) { j.take(m, false) }})
	}
	v := newView(p)
	j.v.Store(v)
	n := len(v.tags)
	j.cur, j.pub, j.curText, j.pubText = make([]tag.Sample, n), make([]tag.Sample, n), make([]string, n), make([]string, n)
	return j, nil
}

// Switch makes the running publisher serve p in place of its plant, on the
// same session: from its next scan it publishes p's tags that differ from
// what it last published (all of a tag that is new or changed its type)
// and clears the retained topic of every tag p does not have. It fails
// when Run is not running; the wait for the run loop is bounded by ctx.
func (j *Publisher) Switch(ctx context.Context, p plant.Plant) error {
	select {
	case j.switches <- newView(p):
		return nil
	case <-j.stopped:
		return errors.New("mqttjson: switch: the publisher is not running")
	case <-ctx.Done():
		return fmt.Errorf("mqttjson: switch: %w", ctx.Err())
	}
}

// serveSwitch is Switch in the run loop: what was published of a tag of
// the same name and type carries over.
func (j *Publisher) serveSwitch(nv *view) {
	old := j.v.Load()
	n := len(nv.tags)
	pub, pubText := make([]tag.Sample, n), make([]string, n)
	for i, in := range nv.tags {
		if id, ok := old.ids[in.Name]; ok && old.tags[id].Type == in.Type {
			pub[i], pubText[i] = j.pub[id], j.pubText[id]
		} else {
			pub[i].Quality = 255 // no quality: published whatever its value
		}
	}
	for _, in := range old.tags {
		if _, ok := nv.ids[in.Name]; !ok {
			j.gone = append(j.gone, in.Name)
		}
	}
	j.cur, j.curText, j.pub, j.pubText = make([]tag.Sample, n), make([]string, n), pub, pubText
	j.v.Store(nv)
	j.log.Info("mqttjson: switched to a new plant", "tags", n, "gone", len(j.gone))
}

// Topic is the topic of a tag's value.
func (j *Publisher) Topic(name string) string { return j.base + name }

// Run serves until ctx ends.
func (j *Publisher) Run(ctx context.Context) error {
	defer close(j.stopped)
	sessions := make(chan *mqttc.Conn)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range j.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); j.serve(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		mqttc.Run(ctx, j.cfg.Backoff, j.log, func() mqttc.Options {
			o := j.cfg.MQTT
			o.Log = j.log
			o.Will = &mqttc.Message{Topic: j.base + "$online", QoS: 1, Retain: true, Payload: []byte("false")}
			return o
		}, func(ctx context.Context, c *mqttc.Conn) error {
			if j.cfg.Commands == nil {
				err := c.SubscribeMessages(ctx, j.base+"+/set", 1, func(m mqttc.Message) {
					j.take(broker.Message{Topic: m.Topic, Payload: m.Payload, Principal: broker.External("json", m.Topic)}, m.Retain)
				})
				if err != nil {
					return err
				}
			}
			if err := c.Publish(ctx, mqttc.Message{Topic: j.base + "$online", QoS: 1, Retain: true, Payload: []byte("true")}); err != nil {
				return err
			}
			select {
			case sessions <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			return c.Hold(ctx)
		})
	}()
	var conn *mqttc.Conn
	t := time.NewTicker(j.cfg.Poll)
	defer t.Stop()
	for {
		var lost <-chan struct{}
		if conn != nil {
			lost = conn.Lost()
		}
		select {
		case <-ctx.Done():
			if conn != nil {
				pctx, cancel := context.WithTimeout(context.Background(), time.Second)
				conn.Publish(pctx, mqttc.Message{Topic: j.base + "$online", QoS: 1, Retain: true, Payload: []byte("false")})
				cancel()
				conn.Close()
			}
			return nil
		case c := <-sessions:
			conn, j.full = c, true
			j.conn.Store(c)
			j.count.Connected.Store(true)
		case <-lost:
			conn = nil
			j.conn.Store(nil)
			j.count.Connected.Store(false)
		case v := <-j.switches:
			j.serveSwitch(v)
		case <-t.C:
			if conn != nil {
				if err := j.poll(ctx, conn); err != nil {
					j.log.Warn("mqttjson: publish failed; reconnecting", "err", err)
					conn.Drop()
					conn = nil
					j.conn.Store(nil)
					j.count.Connected.Store(false)
				}
			}
		}
	}
}

// poll publishes the tags that changed (every tag after a reconnect).
func (j *Publisher) poll(ctx context.Context, c *mqttc.Conn) error {
	v := j.v.Load()
	if _, err := v.p.Snapshot(j.cur, j.curText); err != nil {
		return fmt.Errorf("mqttjson: snapshot: %w", err)
	}
	j.inflight = j.inflight[:0]
	for _, name := range j.gone {
		if _, ok := v.ids[name]; !ok {
			j.inflight = append(j.inflight, c.PublishAsync(mqttc.Message{Topic: j.base + name, QoS: 1, Retain: true}))
		}
	}
	for i := range v.tags {
		if !j.full && !v.tags[i].Changed(j.cur[i], j.pub[i], j.curText[i], j.pubText[i]) {
			continue
		}
		j.inflight = append(j.inflight, c.PublishAsync(mqttc.Message{Topic: j.base + v.tags[i].Name, QoS: j.cfg.QoS, Retain: true,
			Payload: AppendValue(nil, &v.tags[i], j.cur[i], j.curText[i])}))
		j.pub[i], j.pubText[i] = j.cur[i], j.curText[i]
	}
	now := j.cfg.Clock()
	if j.full || now.Sub(j.lastHealth) >= j.cfg.HealthPeriod {
		j.lastHealth = now
		h, _ := json.Marshal(HealthJSON(v.p.Health()))
		if j.full || !bytes.Equal(h, j.health) {
			j.health = h
			j.inflight = append(j.inflight, c.PublishAsync(mqttc.Message{Topic: j.base + "$health", QoS: j.cfg.QoS, Retain: true, Payload: h}))
		}
	}
	j.full = false
	for _, p := range j.inflight {
		if err := p.Wait(ctx); err != nil {
			j.full = true // resend everything on the next session
			return err
		}
		j.count.Published.Add(1)
	}
	j.gone = j.gone[:0]
	return nil
}

// AppendValue appends a tag's JSON message {"v":…,"q":"…","ts":…}.
func AppendValue(b []byte, in *tag.Info, s tag.Sample, text string) []byte {
	b = append(b, `{"v":`...)
	switch {
	case in.Type == tag.String:
		t, _ := json.Marshal(text)
		b = append(b, t...)
	case in.Type == tag.Bool:
		b = strconv.AppendBool(b, s.Value != 0)
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		b = append(b, "null"...)
	case in.Type.Numeric() && in.Type != tag.Float32 && in.Type != tag.Float64:
		b = strconv.AppendInt(b, int64(s.Value), 10)
	default:
		bits := 64
		if in.Type == tag.Float32 {
			bits = 32
		}
		b = strconv.AppendFloat(b, s.Value, 'g', -1, bits)
	}
	b = append(b, `,"q":"`...)
	b = append(b, s.Quality.String()...)
	b = append(b, `","ts":`...)
	b = strconv.AppendInt(b, s.Time/1e6, 10)
	return append(b, '}')
}

// Health is the JSON form of the executive's health.
type Health struct {
	State    string       `json:"state"`
	Fault    string       `json:"fault,omitempty"`
	Cycle    uint64       `json:"cycle"`
	RT       bool         `json:"rt"`
	RTReason string       `json:"rt_reason,omitempty"`
	Tasks    []TaskHealth `json:"tasks"`
}

// TaskHealth is one task's timing, latencies in nanoseconds.
type TaskHealth struct {
	Name     string           `json:"name"`
	Cycles   uint64           `json:"cycles"`
	Overruns uint64           `json:"overruns"`
	WakeupNS map[string]int64 `json:"wakeup_ns"`
	ExecNS   map[string]int64 `json:"exec_ns"`
}

func pct(p plant.Percentiles) map[string]int64 {
	return map[string]int64{"p50": int64(p.P50), "p99": int64(p.P99), "p99.9": int64(p.P999), "max": int64(p.Max)}
}

// HealthJSON converts the executive's health for publishing.
func HealthJSON(h plant.Health) Health {
	out := Health{State: h.State.String(), Fault: h.Fault, Cycle: h.Cycle, RT: h.RT, RTReason: h.RTReason, Tasks: []TaskHealth{}}
	for _, t := range h.Tasks {
		out.Tasks = append(out.Tasks, TaskHealth{Name: t.Name, Cycles: t.Cycles, Overruns: t.Overruns, WakeupNS: pct(t.Wakeup), ExecNS: pct(t.Exec)})
	}
	return out
}

// ParseSet decodes a /set payload: a bare JSON value or {"v":…,"id":"…"}.
func ParseSet(in *tag.Info, payload []byte) (v float64, text, id string, err error) {
	var raw json.RawMessage = bytes.TrimSpace(payload)
	if len(raw) > 0 && raw[0] == '{' {
		var obj struct {
			V  json.RawMessage `json:"v"`
			ID string          `json:"id"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return 0, "", "", fmt.Errorf("mqttjson: %w: %v", wire.ErrWrongType, err)
		}
		if obj.V == nil {
			return 0, "", obj.ID, fmt.Errorf("mqttjson: no \"v\" in the request: %w", wire.ErrWrongType)
		}
		raw, id = obj.V, obj.ID
	}
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return 0, "", id, fmt.Errorf("mqttjson: %w: %v", wire.ErrWrongType, err)
	}
	switch val := x.(type) {
	case bool:
		if in.Type == tag.String {
			return 0, "", id, fmt.Errorf("mqttjson: boolean for string tag %s: %w", in.Name, wire.ErrWrongType)
		}
		if val {
			return 1, "", id, nil
		}
		return 0, "", id, nil
	case float64:
		if in.Type == tag.String {
			return 0, "", id, fmt.Errorf("mqttjson: number for string tag %s: %w", in.Name, wire.ErrWrongType)
		}
		return val, "", id, nil
	case string:
		if in.Type != tag.String {
			return 0, "", id, fmt.Errorf("mqttjson: string for %s tag %s: %w", in.Type, in.Name, wire.ErrWrongType)
		}
		return 0, val, id, nil
	}
	return 0, "", id, fmt.Errorf("mqttjson: unsupported value %s: %w", raw, wire.ErrWrongType)
}

// tagOf is the tag a /set topic names.
func (j *Publisher) tagOf(topic string) string {
	return strings.TrimSuffix(strings.TrimPrefix(topic, j.base), "/set")
}

// ErrBusy answers a request that found every worker busy and the queue full.
var ErrBusy = errors.New("mqttjson: busy: too many /set requests waiting; retry later")

// take queues a /set request for the workers. It runs on the broker's or
// the session's delivery goroutine and never blocks: a retained request is
// refused, and so is one that finds the queue full.
func (j *Publisher) take(m broker.Message, retained bool) {
	name := j.tagOf(m.Topic)
	if retained {
		j.refuse(m, name, "a retained /set is never taken as a command; publish it without retain")
		return
	}
	select {
	case j.cmds <- m:
	default:
		j.refuse(m, name, ErrBusy.Error())
		j.count.CountWrite(ErrBusy)
		if c := j.conn.Load(); c != nil {
			b, _ := json.Marshal(Result{Error: ErrBusy.Error()})
			c.PublishAsync(mqttc.Message{Topic: j.base + name + "/set/result", QoS: 1, Payload: b})
		}
	}
}

func (j *Publisher) refuse(m broker.Message, name, reason string) {
	j.log.Warn("mqttjson: /set refused", "tag", name, "user", m.Principal.User, "client", m.Principal.ClientID, "reason", reason)
	plant.Refuse(context.Background(), j.cfg.Refuser, plant.Refusal{Principal: m.Principal, Tag: name, Value: broker.Clip(m.Payload), Reason: reason})
}

// serve is a worker: it applies queued /set requests and publishes their
// results until ctx ends.
func (j *Publisher) serve(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-j.cmds:
			name := j.tagOf(m.Topic)
			res := j.apply(plant.WithPrincipal(ctx, m.Principal), m, name)
			b, _ := json.Marshal(res)
			c := j.conn.Load()
			if c == nil {
				j.log.Warn("mqttjson: result not delivered: no session", "tag", name)
				continue
			}
			if err := c.Publish(ctx, mqttc.Message{Topic: j.base + name + "/set/result", QoS: 1, Payload: b}); err != nil {
				j.log.Warn("mqttjson: result not delivered", "tag", name, "err", err)
			}
		}
	}
}

// apply decodes and writes one /set request; what is refused before the
// write is recorded with the Refuser, the write itself by the plant's audit.
func (j *Publisher) apply(ctx context.Context, m broker.Message, name string) (res Result) {
	payload := m.Payload
	view := j.v.Load()
	id, ok := view.ids[name]
	var err error
	wrote := false
	defer func() {
		j.count.CountWrite(err)
		if err != nil && !wrote {
			j.refuse(m, name, err.Error())
		}
		if err != nil {
			res.OK, res.Error = false, err.Error()
			var rej *wire.RejectedError
			if errors.As(err, &rej) {
				res.Cycle = rej.Result.Cycle
			}
		}
	}()
	if !ok {
		err = fmt.Errorf("mqttjson: %q: %w", name, wire.ErrUnknownTag)
		return
	}
	in := &view.tags[id]
	var v float64
	var text string
	v, text, res.ID, err = ParseSet(in, payload)
	if err != nil {
		return
	}
	w := wire.Command{Kind: wire.WriteTag, Tag: id, Value: wire.ValueOf(in, v, text), Origin: wire.NewOrigin("json:mqtt " + j.base + name + "/set")}
	if err = plant.Check(view.tags, &w); err != nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, j.cfg.WriteTimeout)
	defer cancel()
	wrote = true
	r, err := view.p.Write(wctx, w)
	if err != nil {
		return
	}
	res.OK, res.Cycle = true, r.Cycle
	return
}

// SetBroker changes the broker URL used from the next connect on. Call
// before Run.
func (j *Publisher) SetBroker(url string) { j.cfg.MQTT.Broker = url }
