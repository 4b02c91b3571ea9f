// Package broker is the bridge's embedded MQTT broker (mochi-mqtt), the
// default for a single machine: it listens on loopback (config mqtt.listen),
// optionally with TLS, and authenticates every client against the config's
// credentials — mqtt.username/password and mqtt.users — denying anyone else.
//
// Access is denied by default. Each user may publish and subscribe only to
// the topic filters granted to it; a user listed without topics may
// subscribe to the node's topics and, unless read_only, publish the node's
// commands. Only the user marked primary_host may publish the primary
// host's Sparkplug STATE; only the bridge's own credential may use the
// client ids mkrt-* and the bridge's configured one. A last will is checked
// like a publish when the client connects, and a will or retained message
// on a command topic is refused: neither is ever taken as a command.
//
// Before a client has authenticated it costs little: packets are bounded
// (limits.max_packet), connections are counted (limits.max_clients) and a
// connection that sends no CONNECT in time is closed
// (limits.connect_timeout). Each client's publishes are rate-limited and its
// QoS 1 messages in flight bounded.
//
// Commands published to the broker reach the bridge in-process through a
// Router, with the publisher's authenticated user, client id and address,
// so the audit knows who wrote. Refused attempts on command topics are
// recorded with a plant.Refuser.
//
// It needs a free TCP port, nothing else.
package broker

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/mkrt/mkrt/bridge/plant"
)

// User is one credential the broker accepts.
type User struct {
	Username string
	// Password is compared in constant time; PasswordHash, when set, is a
	// bcrypt hash checked instead.
	Password     string
	PasswordHash []byte
	// Publish and Subscribe are the topic filters the user may publish to
	// and subscribe to; nothing else is allowed.
	Publish, Subscribe []string
	// PrimaryHost lets the user publish Topics.State, the primary host's
	// Sparkplug STATE, which no other user may.
	PrimaryHost bool
	// Bridge marks the bridge's own credential: it may publish and
	// subscribe to everything and use the reserved client ids.
	Bridge bool
}

// Topics is what the broker knows of the bridge's topics.
type Topics struct {
	// State is spBv1.0/STATE/<primary host>, "" without a primary host.
	State string
	// Reserved are client ids, besides every mkrt-* one, that only a
	// Bridge user may take.
	Reserved []string
}

// Limits bound what one client, and all of them, may cost the broker.
// Zero values take the defaults.
type Limits struct {
	// MaxPacket is the largest MQTT packet accepted, in bytes; default 1 MiB.
	MaxPacket uint32
	// MaxClients is the most connections at once, authenticated or not;
	// default 64. A connection over it is closed at once.
	MaxClients int
	// ConnectTimeout closes a connection that sends no CONNECT in time;
	// default 5s.
	ConnectTimeout time.Duration
	// MaxInflight is the most QoS 1/2 messages in flight per client;
	// default 64.
	MaxInflight uint16
	// MessageRate is the publishes per second a client may sustain (its
	// burst is the same number); default 200. The bridge's own clients are
	// not limited.
	MessageRate int
}

// Defaults of Limits.
const (
	DefaultMaxPacket      = 1 << 20
	DefaultMaxClients     = 64
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxInflight    = 64
	DefaultMessageRate    = 200
)

func (l *Limits) defaults() {
	if l.MaxPacket == 0 {
		l.MaxPacket = DefaultMaxPacket
	}
	if l.MaxClients <= 0 {
		l.MaxClients = DefaultMaxClients
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.MessageRate <= 0 {
		l.MessageRate = DefaultMessageRate
	}
}

// Config is the embedded broker's listener, credentials and limits.
type Config struct {
	// Listen is the TCP address, e.g. 127.0.0.1:1883 (":0" picks a port).
	Listen string
	Users  []User
	// AllowAnonymous admits clients without credentials (tests and demos
	// only; off unless set). They may do what Anonymous grants.
	AllowAnonymous bool
	Anonymous      User
	TLS            *tls.Config
	Topics         Topics
	Limits         Limits
	// Commands receives the messages published to command topics; nil
	// hands none over.
	Commands *Router
	// Refuser records refused attempts on command topics.
	Refuser plant.Refuser
	Log     *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	srv  *mqtt.Server
	addr net.Addr
	tls  bool
}

// Start listens and serves until Close.
func Start(cfg Config) (*Broker, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if !cfg.AllowAnonymous && len(cfg.Users) == 0 {
		return nil, errors.New("broker: no credentials configured (set mqtt.username/password or mqtt.users): every client would be refused")
	}
	if cfg.Commands == nil {
		cfg.Commands = NewRouter()
	}
	cfg.Limits.defaults()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64 * 1024
	caps.MaximumPacketSize = cfg.Limits.MaxPacket
	caps.MaximumClients = int64(cfg.Limits.MaxClients)
	caps.MaximumInflight = cfg.Limits.MaxInflight
	caps.ReceiveMaximum = cfg.Limits.MaxInflight
	log := slog.New(quietClose{cfg.Log.Handler()}).With("component", "broker")
	srv := mqtt.New(&mqtt.Options{Logger: log, Capabilities: caps})
	h := &authHook{cfg: cfg, log: log, srv: srv}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", cfg.Listen, err)
	}
	addr := l.Addr()
	l = &limitListener{Listener: l, slots: make(chan struct{}, cfg.Limits.MaxClients), timeout: cfg.Limits.ConnectTimeout, log: log}
	if cfg.TLS != nil {
		l = tls.NewListener(l, cfg.TLS)
	}
	if err := srv.AddListener(listeners.NewNet("mkrt", l)); err != nil {
		l.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, addr: addr, tls: cfg.TLS != nil}, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() net.Addr { return b.addr }

// URL is the broker's URL for clients (tcp:// or ssl://).
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.addr.String()
	}
	return "tcp://" + b.addr.String()
}

// Clients is the number of connected clients.
func (b *Broker) Clients() int { return b.srv.Clients.Len() }

// Close stops the broker and disconnects every client.
func (b *Broker) Close() error { return b.srv.Close() }

// limitListener closes connections beyond its slots at once and gives each
// accepted one a deadline for its CONNECT; the broker replaces the deadline
// with the keep-alive once the CONNECT is read.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	timeout time.Duration
	log     *slog.Logger
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			c.SetDeadline(time.Now().Add(l.timeout))
			return &slotConn{Conn: c, free: l.slots}, nil
		default:
			l.log.Warn("broker: connection refused: too many clients (limits.max_clients)", "remote", c.RemoteAddr().String(), "max", cap(l.slots))
			c.Close()
		}
	}
}

// slotConn gives its slot back when closed.
type slotConn struct {
	net.Conn
	free chan struct{}
	once sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(func() { <-c.free })
	return c.Conn.Close()
}

// Message is a message published to a command topic, with who sent it.
type Message struct {
	Topic   string
	Payload []byte
	// Principal is the publisher; its Protocol is the route's.
	Principal plant.Principal
}

// External is the principal of a command taken from an external broker,
// which does not say who published it: the user is unknown, the topic is
// in Peer.
func External(protocol, topic string) plant.Principal {
	return plant.Principal{Protocol: protocol, User: "unknown (external broker)", Peer: "mqtt topic " + topic}
}

// Route is one kind of command topic the bridge serves.
type Route struct {
	// Filter is the topic filter of the commands, e.g. mkrt/node/+/set.
	Filter string
	// Protocol names the way in for the audit: "json", "sparkplug".
	Protocol string
	// Tag names the tag a topic of the route writes ("" when the payload
	// names it); nil for none.
	Tag func(topic string) string
	// Deliver takes a command. It runs on the publisher's connection
	// goroutine: it must return quickly.
	Deliver func(Message)
}

// Router hands command-topic messages from the broker to the bridge's
// servers. It may be built before the broker starts and routes added
// while it runs.
type Router struct {
	mu     sync.RWMutex
	routes []*Route
}

// NewRouter is an empty router.
func NewRouter() *Router { return &Router{} }

// Handle adds r; the returned func removes it.
func (rt *Router) Handle(r Route) (remove func()) {
	p := &r
	rt.mu.Lock()
	rt.routes = append(rt.routes, p)
	rt.mu.Unlock()
	return func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		rt.routes = slices.DeleteFunc(rt.routes, func(q *Route) bool { return q == p })
	}
}

// match is the route of topic, or nil.
func (rt *Router) match(topic string) *Route {
	if rt == nil {
		return nil
	}
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	for _, r := range rt.routes {
		if Covers(r.Filter, topic) {
			return r
		}
	}
	return nil
}

// Covers reports whether every topic that filter f matches is matched by
// filter g too (for a topic name f: whether g matches it).
func Covers(g, f string) bool {
	if strings.HasPrefix(f, "$") != strings.HasPrefix(g, "$") {
		return false // [MQTT-4.7.2-1]: wildcards do not reach $SYS
	}
	gs, fs := strings.Split(g, "/"), strings.Split(f, "/")
	for i, gl := range gs {
		switch {
		case gl == "#":
			return true
		case i >= len(fs):
			return false
		case gl == "+":
			if fs[i] == "#" {
				return false
			}
		case gl != fs[i]:
			return false
		}
	}
	return len(fs) == len(gs)
}

// authHook authenticates, authorizes, limits and hands commands over.
type authHook struct {
	mqtt.HookBase
	cfg   Config
	log   *slog.Logger
	srv   *mqtt.Server
	rates sync.Map // *mqtt.Client -> *bucket
}

func (h *authHook) ID() string { return "mkrt-auth" }

func (h *authHook) Provides(b byte) bool {
	return slices.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPublished, mqtt.OnDisconnect, mqtt.OnWillSent}, b)
}

// user is the configured user named name (the anonymous one for "").
func (h *authHook) user(name []byte) (*User, bool) {
	if len(name) == 0 {
		return &h.cfg.Anonymous, h.cfg.AllowAnonymous
	}
	for i := range h.cfg.Users {
		if h.cfg.Users[i].Username == string(name) {
			return &h.cfg.Users[i], true
		}
	}
	return nil, false
}

func (u *User) passwordOK(pw []byte) bool {
	if u.PasswordHash != nil {
		return bcrypt.CompareHashAndPassword(u.PasswordHash, pw) == nil
	}
	return subtle.ConstantTimeCompare([]byte(u.Password), pw) == 1
}

// may reports whether u may publish (write) or subscribe to topic.
func (h *authHook) may(u *User, topic string, write bool) bool {
	if u.Bridge {
		return true
	}
	if write && h.cfg.Topics.State != "" && Covers(topic, h.cfg.Topics.State) {
		return u.PrimaryHost && topic == h.cfg.Topics.State
	}
	grants := u.Subscribe
	if write {
		grants = u.Publish
	}
	for _, g := range grants {
		if Covers(g, topic) {
			return true
		}
	}
	return false
}

func (h *authHook) reserved(id string) bool {
	return strings.HasPrefix(id, "mkrt-") || slices.Contains(h.cfg.Topics.Reserved, id)
}

func (h *authHook) principal(cl *mqtt.Client) plant.Principal {
	return plant.Principal{User: string(cl.Properties.Username), ClientID: cl.ID, Peer: cl.Net.Remote}
}

// refuse records a refused attempt on a command topic, up to refusalRate
// a second for one client.
func (h *authHook) refuse(cl *mqtt.Client, topic string, payload []byte, reason string) {
	r := h.cfg.Commands.match(topic)
	if r == nil || !h.rate(cl, false) {
		return
	}
	rf := plant.Refusal{Principal: h.principal(cl), Value: Clip(payload), Reason: reason}
	rf.Principal.Protocol = r.Protocol
	if r.Tag != nil {
		rf.Tag = r.Tag(topic)
	}
	h.log.Warn("broker: command refused", "topic", topic, "user", rf.Principal.User, "client", cl.ID, "remote", cl.Net.Remote, "reason", reason)
	plant.Refuse(context.Background(), h.cfg.Refuser, rf)
}

// Clip is a payload as a refusal records it: its first 64 bytes.
func Clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	u, ok := h.user(cl.Properties.Username)
	if !ok || (len(cl.Properties.Username) > 0 && !u.passwordOK(pk.Connect.Password)) ||
		(len(cl.Properties.Username) == 0 && len(pk.Connect.Password) > 0) {
		h.log.Warn("broker: connection refused: unknown user or wrong password", "user", string(cl.Properties.Username), "remote", cl.Net.Remote)
		return false
	}
	if h.reserved(cl.ID) && !u.Bridge {
		h.log.Warn("broker: connection refused: the client id is reserved to the bridge", "client", cl.ID, "user", u.Username, "remote", cl.Net.Remote)
		return false
	}
	if pk.Connect.WillFlag {
		topic := pk.Connect.WillTopic
		switch {
		case h.cfg.Commands.match(topic) != nil:
			h.refuse(cl, topic, pk.Connect.WillPayload, "a last will on a command topic is never taken as a command")
			h.rates.Delete(cl) // a refused client is never disconnected: forget it now
			return false
		case !h.may(u, topic, true):
			h.log.Warn("broker: connection refused: the user may not publish its will's topic", "user", u.Username, "topic", topic, "remote", cl.Net.Remote)
			return false
		}
	}
	return true
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	u, ok := h.user(cl.Properties.Username)
	if ok && h.may(u, topic, write) {
		return true
	}
	if write {
		h.refuse(cl, topic, nil, "the user may not publish to this topic")
	}
	return false
}

// refusalRate is how many refusals a second of one client are recorded;
// more are dropped, so that a flood cannot rotate the audit away.
const refusalRate = 10

// bucket holds a client's tokens: publishes, and refusals to record.
type bucket struct {
	mu               sync.Mutex
	tokens, refusals float64
	last             time.Time
}

// take takes a publish token (publish) or a refusal token.
func (b *bucket) take(rate float64, publish bool, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	dt := now.Sub(b.last).Seconds()
	b.last = now
	b.tokens = min(rate, b.tokens+dt*rate)
	b.refusals = min(refusalRate, b.refusals+dt*refusalRate)
	n := &b.refusals
	if publish {
		n = &b.tokens
	}
	if *n < 1 {
		return false
	}
	*n--
	return true
}

// rate takes a token of cl's (see bucket.take); the bridge's own clients
// are not limited.
func (h *authHook) rate(cl *mqtt.Client, publish bool) bool {
	if u, known := h.user(cl.Properties.Username); known && u.Bridge {
		return true
	}
	rate := float64(h.cfg.Limits.MessageRate)
	v, _ := h.rates.LoadOrStore(cl, &bucket{tokens: rate, refusals: refusalRate, last: time.Now()})
	return v.(*bucket).take(rate, publish, time.Now())
}

func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !h.rate(cl, true) {
		h.refuse(cl, pk.TopicName, pk.Payload, "message rate limit exceeded (limits.message_rate)")
		return pk, packets.CodeSuccessIgnore // acknowledged, neither kept nor forwarded
	}
	if pk.FixedHeader.Retain && h.cfg.Commands.match(pk.TopicName) != nil {
		h.refuse(cl, pk.TopicName, pk.Payload, "a retained message on a command topic is never taken as a command; publish it without retain")
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

func (h *authHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	r := h.cfg.Commands.match(pk.TopicName)
	if r == nil || cl.Net.Inline || pk.Ignore {
		return
	}
	m := Message{Topic: pk.TopicName, Payload: pk.Payload, Principal: h.principal(cl)}
	m.Principal.Protocol = r.Protocol
	r.Deliver(m)
}

func (h *authHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	// Wills on command topics are refused at CONNECT; one that got here
	// anyway is still not delivered as a command (OnPublished is not
	// called for wills).
	if h.cfg.Commands.match(pk.TopicName) != nil {
		h.refuse(cl, pk.TopicName, pk.Payload, "a last will on a command topic is never taken as a command")
	}
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.rates.Delete(cl) }

// quietClose passes the broker's log records on, except the warnings about
// reading from connections the broker itself closed while shutting down.
type quietClose struct{ slog.Handler }

func (q quietClose) Handle(ctx context.Context, r slog.Record) error {
	closed := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, net.ErrClosed) {
			closed = true
			return false
		}
		return true
	})
	if closed {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietClose) WithAttrs(as []slog.Attr) slog.Handler {
	return quietClose{q.Handler.WithAttrs(as)}
}
func (q quietClose) WithGroup(name string) slog.Handler { return quietClose{q.Handler.WithGroup(name)} }
