package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/bridge/mqttjson"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// view is one generation's plant as the HMI shows it; Switch replaces it
// whole.
type view struct {
	cfg    *configs.Config
	p      plant.Plant
	ids    map[string]tag.ID
	infos  []TagInfo
	ring   *Ring
	alarms []alarmDef
	seqs   []seqDef
}

func newView(c Config, cfg *configs.Config, p plant.Plant) *view {
	tags := p.Tags()
	v := &view{cfg: cfg, p: p, ids: make(map[string]tag.ID, len(tags)), infos: make([]TagInfo, len(tags)),
		ring: NewRing(len(tags), int(min(c.Trend/c.TrendEvery, MaxSlots)))}
	desc := map[string]string{}
	for _, t := range cfg.Tags {
		desc[t.Name] = t.Description
	}
	for i, in := range tags {
		v.ids[in.Name] = tag.ID(i)
		ti := TagInfo{ID: i, Name: in.Name, Type: string(in.Type), Unit: in.Unit, Device: in.Device, Writable: in.Writable,
			Description: desc[in.Name]}
		if !math.IsInf(in.Min, 0) && !math.IsNaN(in.Min) {
			ti.Min = &in.Min
		}
		if !math.IsInf(in.Max, 0) && !math.IsNaN(in.Max) {
			ti.Max = &in.Max
		}
		v.infos[i] = ti
	}
	v.alarms = alarmDefs(cfg, v.ids, tags)
	v.seqs = sequenceDefs(cfg, v.ids, tags)
	return v
}

// client is one browser's live stream.
type client struct {
	ch chan []byte
}

// hub reads the plant every poll, keeps the trend ring and the alarms,
// and sends what changed to every live stream.
type hub struct {
	c Config
	v atomic.Pointer[view]

	mu      sync.Mutex
	clients map[*client]struct{}
	snap    []tag.Sample // the latest image, for the overview and new streams
	snapTxt []string
	alarms  alarmBook

	// the scan goroutine's own
	scanned   *view
	cur, prev []tag.Sample
	text      []string
	prevText  []string
	lastTrend time.Time
}

func newHub(c Config, p plant.Plant) *hub {
	h := &hub{c: c, clients: map[*client]struct{}{}}
	h.v.Store(newView(c, c.Config, p))
	return h
}

func (h *hub) view() *view { return h.v.Load() }

func (h *hub) switchTo(cfg *configs.Config, p plant.Plant) {
	h.v.Store(newView(h.c, cfg, p))
}

// latest is a copy of the latest image.
func (h *hub) latest() []tag.Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]tag.Sample(nil), h.snap...)
}

func (h *hub) run(ctx context.Context) {
	t := time.NewTicker(h.c.Poll)
	defer t.Stop()
	for {
		h.tick(h.c.Clock())
		select {
		case <-ctx.Done():
			h.mu.Lock()
			for c := range h.clients {
				close(c.ch)
				delete(h.clients, c)
			}
			h.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// sample reads the image into h.cur and, once every trend interval,
// appends it to the trend ring.
//
// Hot path: the web scan, every poll; it allocates nothing.
func (h *hub) sample(v *view, now time.Time) error {
	if _, err := v.p.Snapshot(h.cur, h.text); err != nil {
		return err
	}
	if now.Sub(h.lastTrend) >= h.c.TrendEvery {
		v.ring.Append(now.UnixMilli(), h.cur)
		h.lastTrend = now
	}
	return nil
}

// resize makes the scan buffers fit v; a new generation's first scan
// sends every tag.
func (h *hub) resize(v *view) {
	n := len(v.p.Tags())
	h.cur, h.prev = make([]tag.Sample, n), make([]tag.Sample, n)
	h.text, h.prevText = make([]string, n), make([]string, n)
	h.scanned, h.lastTrend = v, time.Time{}
	h.mu.Lock()
	h.snap, h.snapTxt = nil, nil
	h.mu.Unlock()
}

func (h *hub) tick(now time.Time) {
	if h.c.Current != nil {
		if cfg, p := h.c.Current(); p != nil && p != h.view().p {
			h.switchTo(cfg, p)
		}
	}
	v := h.view()
	fresh := v != h.scanned
	if fresh {
		h.resize(v)
	}
	err := h.sample(v, now)
	health := v.p.Health()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.snap = append(h.snap[:0], h.cur...)
		h.snapTxt = append(h.snapTxt[:0], h.text...)
	}
	h.alarms.update(v, h.cur, now)
	alarmsChanged := h.alarms.dirty || fresh
	if len(h.clients) == 0 {
		copy(h.prev, h.cur)
		copy(h.prevText, h.text)
		return
	}
	var msgs [][]byte
	if fresh {
		msgs = append(msgs, frame("tags-reset", v.infos))
	}
	if err == nil {
		if m := tagsFrame(v, h.cur, h.text, h.prev, h.prevText, fresh); m != nil {
			msgs = append(msgs, m)
		}
	}
	msgs = append(msgs, frame("health", healthJSON(health)))
	if alarmsChanged {
		msgs = append(msgs, frame("alarms", h.alarms.list(v)))
		h.alarms.dirty = false
	}
	copy(h.prev, h.cur)
	copy(h.prevText, h.text)
	for c := range h.clients {
		for _, m := range msgs {
			select {
			case c.ch <- m:
			default: // too slow: the browser reconnects and starts over
				close(c.ch)
				delete(h.clients, c)
			}
			if _, ok := h.clients[c]; !ok {
				break
			}
		}
	}
}

// subscribe adds a stream and queues the whole image for it; nil when
// MaxStreams are open.
func (h *hub) subscribe(health plant.Health) *client {
	v := h.view()
	c := &client{ch: make(chan []byte, 64)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clients) >= h.c.MaxStreams {
		return nil
	}
	c.ch <- frame("tags-reset", v.infos)
	if len(h.snap) == len(v.infos) {
		c.ch <- tagsFrame(v, h.snap, h.snapTxt, nil, nil, true)
	}
	c.ch <- frame("health", healthJSON(health))
	c.ch <- frame("alarms", h.alarms.list(v))
	h.clients[c] = struct{}{}
	return c
}

func (h *hub) unsubscribe(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c.ch)
	}
}

func healthJSON(h plant.Health) mqttjson.Health { return mqttjson.HealthJSON(h) }

// frame is one Server-Sent Event.
func frame(event string, v any) []byte {
	b, _ := json.Marshal(v)
	out := make([]byte, 0, len(b)+len(event)+16)
	out = append(out, "event: "...)
	out = append(out, event...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

// tagsFrame is the "tags" event of the tags that changed since prev (all
// when all), nil when none did: [[id, value, quality, reason, ms], ...].
func tagsFrame(v *view, cur []tag.Sample, text []string, prev []tag.Sample, prevText []string, all bool) []byte {
	b := []byte("event: tags\ndata: [")
	n := 0
	tags := v.p.Tags()
	for i := range cur {
		if !all && cur[i] == prev[i] && text[i] == prevText[i] {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		s := &cur[i]
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		switch {
		case tags[i].Type == tag.String:
			b = strconv.AppendQuote(b, text[i])
		case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
			b = append(b, "null"...)
		default:
			b = strconv.AppendFloat(b, s.Value, 'g', -1, 64)
		}
		b = append(b, ",\""...)
		b = append(b, s.Quality.String()...)
		b = append(b, "\",\""...)
		if s.Reason != tag.NoReason {
			b = append(b, s.Reason.String()...)
		}
		b = append(b, "\","...)
		b = strconv.AppendInt(b, s.Time/1e6, 10)
		b = append(b, ']')
	}
	if n == 0 {
		return nil
	}
	return append(b, "]\n\n"...)
}

// events is the live stream: Server-Sent Events "tags-reset" (the tag
// directory), "tags" (changed values), "health", "alarms" and "logout".
func (s *Server) events(w http.ResponseWriter, r *http.Request, se session) {
	ck, _ := r.Cookie(s.cookieName())
	rc := http.NewResponseController(w)
	c := s.hub.subscribe(s.hub.view().p.Health())
	if c == nil {
		w.Header().Set("Retry-After", "10")
		jsonError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d live streams are open, the most the HMI serves: close a tab", s.c.MaxStreams))
		return
	}
	defer s.hub.unsubscribe(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	check := time.NewTicker(s.sessionCheck)
	defer check.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m, ok := <-c.ch:
			if !ok {
				return
			}
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write(m); err != nil {
				return
			}
			if len(c.ch) == 0 {
				if err := rc.Flush(); err != nil {
					return
				}
			}
		case <-check.C:
			if _, ok := s.sessions.get(ck.Value); !ok {
				w.Write([]byte("event: logout\ndata: {}\n\n"))
				rc.Flush()
				return
			}
			w.Write([]byte(": ping\n\n"))
			rc.Flush()
		}
	}
}

// clientCount is the number of live streams.
func (h *hub) clientCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}
