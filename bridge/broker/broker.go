// Package broker is the bridge's embedded MQTT broker (mochi-mqtt), the
// default for a single machine: it listens on loopback (config mqtt.listen),
// optionally with TLS, and authenticates every client against the config's
// credentials — mqtt.username/password and mqtt.users — denying anyone else.
// Read-only users may subscribe but not publish. Plants that scale past one
// machine use an external, clustered broker instead.
//
// It needs a free TCP port, nothing else.
package broker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// User is one credential the broker accepts.
type User struct {
	Username, Password string
	ReadOnly           bool
}

// Config is the embedded broker's listener and credentials.
type Config struct {
	// Listen is the TCP address, e.g. 127.0.0.1:1883 (":0" picks a port).
	Listen string
	Users  []User
	// AllowAnonymous admits clients without credentials (tests and demos
	// only; off unless set).
	AllowAnonymous bool
	TLS            *tls.Config
	Log            *slog.Logger
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
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64 * 1024
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(quietClose{cfg.Log.Handler()}).With("component", "broker"), Capabilities: caps})
	if err := srv.AddHook(&authHook{users: cfg.Users, anon: cfg.AllowAnonymous}, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", cfg.Listen, err)
	}
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
	return &Broker{srv: srv, addr: l.Addr(), tls: cfg.TLS != nil}, nil
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

// authHook admits only configured users; read-only users cannot publish.
type authHook struct {
	mqtt.HookBase
	users []User
	anon  bool
}

func (h *authHook) ID() string { return "mkrt-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *authHook) user(cl *mqtt.Client, password []byte) (User, bool) {
	name := cl.Properties.Username
	for _, u := range h.users {
		if subtle.ConstantTimeCompare([]byte(u.Username), name) == 1 && subtle.ConstantTimeCompare([]byte(u.Password), password) == 1 {
			return u, true
		}
	}
	return User{}, false
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if len(cl.Properties.Username) == 0 && len(pk.Connect.Password) == 0 && h.anon {
		return true
	}
	_, ok := h.user(cl, pk.Connect.Password)
	return ok
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write {
		return true
	}
	name := string(cl.Properties.Username)
	if name == "" {
		return h.anon
	}
	for _, u := range h.users {
		if u.Username == name {
			return !u.ReadOnly
		}
	}
	return false
}

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
