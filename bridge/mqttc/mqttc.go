// Package mqttc is the bridge's MQTT client session: one connection to an
// MQTT 3.1.1 broker (the embedded one, mosquitto, or any clustered broker by
// URL) with TLS, credentials, a will, bounded waits, and a reconnect loop
// with exponential backoff that builds a fresh session — and so a fresh will
// — on every attempt, as Sparkplug's bdSeq requires.
//
// Nothing here assumes a single broker node: client ids are the caller's,
// sessions are clean, and subscriptions are made again on every connect. It
// needs a reachable broker, nothing else.
package mqttc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mkrt/mkrt/configs"
)

// ErrNotConnected is returned by Publish on a session that has ended.
var ErrNotConnected = errors.New("mqttc: not connected")

// Message is one MQTT message.
type Message struct {
	Topic   string
	QoS     byte
	Retain  bool
	Payload []byte
}

// Options is one session's parameters.
type Options struct {
	// Broker is a URL: tcp://host:port, ssl://host:port, ws://, wss://.
	Broker    string
	ClientID  string
	Username  string
	Password  string
	TLS       *tls.Config
	KeepAlive time.Duration // default 30s
	// Will is published by the broker when the session ends uncleanly.
	Will *Message
	// Timeout bounds the connect, subscribe and each publish; default 10s.
	Timeout time.Duration
	// Persistent keeps the broker-side session (clean session off), so
	// QoS 1 messages published while this client is away are kept for it.
	Persistent bool
	// Default receives messages no subscription's handler claims (a
	// persistent session's queued messages arrive before Subscribe).
	Default Handler
	Log     *slog.Logger
}

// Handler receives a message. It runs on the session's delivery goroutine:
// it must return quickly (hand work to another goroutine).
type Handler func(topic string, payload []byte)

// Conn is one connected session.
type Conn struct {
	c       paho.Client
	timeout time.Duration
	lost    chan struct{}
	once    sync.Once
	err     error
	log     *slog.Logger
}

// Connect opens one session, bounded by ctx and o.Timeout.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{timeout: o.Timeout, lost: make(chan struct{}), log: o.Log}
	po := paho.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetCleanSession(!o.Persistent).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(o.Timeout).
		SetConnectTimeout(o.Timeout).
		SetWriteTimeout(o.Timeout).
		SetOrderMatters(true).
		SetMessageChannelDepth(4096).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.markLost(err) })
	if o.Default != nil {
		h := o.Default
		po.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) })
	}
	if o.Username != "" {
		po.SetUsername(o.Username).SetPassword(o.Password)
	}
	if o.TLS != nil {
		po.SetTLSConfig(o.TLS)
	}
	if o.Will != nil {
		po.SetBinaryWill(o.Will.Topic, o.Will.Payload, o.Will.QoS, o.Will.Retain)
	}
	c.c = paho.NewClient(po)
	if err := c.wait(ctx, c.c.Connect()); err != nil {
		c.c.Disconnect(0)
		return nil, fmt.Errorf("mqttc: connect %s as %q: %w", o.Broker, o.ClientID, err)
	}
	return c, nil
}

func (c *Conn) markLost(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.lost)
	})
}

// wait waits for a token, bounded by ctx and the session timeout.
func (c *Conn) wait(ctx context.Context, t paho.Token) error {
	tm := time.NewTimer(c.timeout)
	defer tm.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return fmt.Errorf("no answer from the broker within %v", c.timeout)
	case <-c.lost:
		return fmt.Errorf("%w: %v", ErrNotConnected, c.err)
	}
}

// Hold blocks until the session ends (returning why) or ctx ends.
func (c *Conn) Hold(ctx context.Context) error {
	select {
	case <-c.lost:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Lost is closed when the session ends; Err then says why.
func (c *Conn) Lost() <-chan struct{} { return c.lost }

// Err is why the session ended.
func (c *Conn) Err() error { return c.err }

// Publish sends a message and, for QoS 1, waits for the broker's
// acknowledgement (bounded by ctx and the session timeout).
func (c *Conn) Publish(ctx context.Context, m Message) error {
	if err := c.wait(ctx, c.c.Publish(m.Topic, m.QoS, m.Retain, m.Payload)); err != nil {
		return fmt.Errorf("mqttc: publish %s: %w", m.Topic, err)
	}
	return nil
}

// Pending is a publish in flight.
type Pending struct {
	c *Conn
	t paho.Token
	m string
}

// Wait waits for the broker's acknowledgement.
func (p Pending) Wait(ctx context.Context) error {
	if err := p.c.wait(ctx, p.t); err != nil {
		return fmt.Errorf("mqttc: publish %s: %w", p.m, err)
	}
	return nil
}

// PublishAsync queues a message and returns without waiting; many may be
// in flight at once.
func (c *Conn) PublishAsync(m Message) Pending {
	return Pending{c: c, t: c.c.Publish(m.Topic, m.QoS, m.Retain, m.Payload), m: m.Topic}
}

// Subscribe subscribes to filter; h receives its messages.
func (c *Conn) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	t := c.c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) })
	if err := c.wait(ctx, t); err != nil {
		return fmt.Errorf("mqttc: subscribe %s: %w", filter, err)
	}
	return nil
}

// SubscribeMessages is Subscribe with the whole message: a message the
// broker had retained arrives with Retain set.
func (c *Conn) SubscribeMessages(ctx context.Context, filter string, qos byte, h func(Message)) error {
	t := c.c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) {
		h(Message{Topic: m.Topic(), QoS: m.Qos(), Retain: m.Retained(), Payload: m.Payload()})
	})
	if err := c.wait(ctx, t); err != nil {
		return fmt.Errorf("mqttc: subscribe %s: %w", filter, err)
	}
	return nil
}

// Close ends the session cleanly (no will), waiting up to 250 ms for
// in-flight work.
func (c *Conn) Close() {
	c.c.Disconnect(250)
	c.markLost(errors.New("closed"))
}

// Drop ends the session without a DISCONNECT packet, so the broker publishes
// the will (as a crash would).
func (c *Conn) Drop() {
	c.c.Disconnect(0)
	c.markLost(errors.New("dropped"))
}

// Backoff is the reconnect delay policy.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) next(d time.Duration) time.Duration {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if d < b.Min {
		return b.Min
	}
	d *= 2
	if d > b.Max {
		d = b.Max
	}
	return d
}

// Run keeps a session up until ctx ends: it builds options for each attempt
// (opts may change the will, e.g. a new bdSeq), connects, calls serve with
// the session, and after serve returns or the connection fails waits out
// the backoff (with jitter) and tries again. serve should return when
// c.Lost() is closed or ctx ends. Run returns ctx.Err().
func Run(ctx context.Context, b Backoff, log *slog.Logger, opts func() Options, serve func(ctx context.Context, c *Conn) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var delay time.Duration
	for {
		o := opts()
		c, err := Connect(ctx, o)
		if err == nil {
			delay = 0
			err = serve(ctx, c)
			c.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn("mqttc: session ended", "broker", o.Broker, "client", o.ClientID, "err", err)
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else {
			log.Warn("mqttc: connect failed", "broker", o.Broker, "client", o.ClientID, "err", err)
		}
		delay = b.next(delay)
		jit := time.Duration(rand.Int64N(int64(delay)/4 + 1))
		t := time.NewTimer(delay + jit)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// FromConfig turns the config's broker connection into session options.
// embedded is the embedded broker's URL (used when m.Broker is "embedded"
// or empty). The password comes from password_file when set.
func FromConfig(m configs.MQTT, clientID, embedded string) (Options, error) {
	o := Options{Broker: m.Broker, ClientID: clientID, Username: m.Username, Password: m.Password, KeepAlive: m.KeepAlive.D()}
	if o.Broker == "" || o.Broker == "embedded" {
		o.Broker = embedded
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return o, fmt.Errorf("mqttc: password_file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if strings.HasPrefix(o.Broker, "ssl://") || strings.HasPrefix(o.Broker, "tls://") || strings.HasPrefix(o.Broker, "wss://") || m.TLS.CA != "" || m.TLS.Cert != "" {
		t, err := ClientTLS(m.TLS)
		if err != nil {
			return o, err
		}
		o.TLS = t
	}
	return o, nil
}

// ClientTLS builds a client TLS config: the CA that signs the server's
// certificate and, optionally, a client certificate.
func ClientTLS(t configs.TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pool, err := LoadPool(t.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		kp, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("mqttc: client certificate %s: %w", t.Cert, err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c, nil
}

// LoadPool reads a PEM file of CA certificates.
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mqttc: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("mqttc: CA file %s: no PEM certificate", path)
	}
	return pool, nil
}
