package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"
)

// Config is how a simulator is served.
type Config struct {
	// Listen is host:port; port 0 picks a free port (see Server.Addr).
	Listen string
	// Speed is sim seconds per wall second; default 1.
	Speed float64
	// Tick is the wall-clock step of the simulation; default 10ms. A zero
	// Tick with Manual set runs no ticker: the caller advances with Step.
	Tick time.Duration
	// Manual runs no ticker; the simulation advances only with Step.
	Manual bool
	// Logger receives the Modbus server's messages; default discards them.
	Logger *slog.Logger
}

// Server is a model served as a Modbus TCP slave.
type Server struct {
	model Model
	bank  *Bank
	wd    *watchdog // nil for Serve
	srv   *mb.ModbusServer
	addr  string
	mu    sync.Mutex // serialises Step
	stop  context.CancelFunc
	done  chan struct{}
}

// ErrListen is a listen address the simulator could not bind.
var ErrListen = errors.New("sim: cannot listen")

// Start serves m on cfg.Listen, with the comm-loss watchdog every simulator
// has (see the package doc), and advances it on a ticker until ctx ends or
// Close is called.
func Start(ctx context.Context, m Model, cfg Config) (*Server, error) {
	b := m.NewBank()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wd := newWatchdog(func() { b.Update(m.Safe) }, log.With("model", m.Name()))
	s, err := serve(ctx, &device{bank: b, wd: wd}, cfg, m, b, wd)
	if err != nil {
		wd.close()
	}
	return s, err
}

// Serve serves h (a Bank, or any handler such as a Bank wrapped by a test
// to record requests) on cfg.Listen until ctx ends or Close is called. No
// model runs: the contents change only by Modbus writes or the caller.
func Serve(ctx context.Context, h mb.RequestHandler, cfg Config) (*Server, error) {
	cfg.Manual = true
	return serve(ctx, h, cfg, nil, nil, nil)
}

func serve(ctx context.Context, h mb.RequestHandler, cfg Config, m Model, b *Bank, wd *watchdog) (*Server, error) {
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{model: m, bank: b, wd: wd, done: make(chan struct{})}
	var err error
	// simonvetter/modbus does not report the port it bound, so port 0 is
	// resolved here first; a port taken in between is retried.
	for attempt := 0; attempt < 5; attempt++ {
		if s.addr, err = resolveListen(cfg.Listen); err != nil {
			return nil, err
		}
		s.srv, err = mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + s.addr, Timeout: 5 * time.Minute,
			MaxClients: 32, Logger: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}, h)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrListen, cfg.Listen, err)
		}
		if err = s.srv.Start(); err == nil {
			break
		}
		if _, port, _ := net.SplitHostPort(cfg.Listen); port != "0" {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrListen, cfg.Listen, err)
	}
	ctx, s.stop = context.WithCancel(ctx)
	go s.run(ctx, cfg)
	return s, nil
}

func resolveListen(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrListen, addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrListen, addr, err)
	}
	defer l.Close()
	_, port, _ = net.SplitHostPort(l.Addr().String())
	return net.JoinHostPort(host, port), nil
}

func (s *Server) run(ctx context.Context, cfg Config) {
	defer close(s.done)
	defer s.srv.Stop()
	if s.wd != nil {
		defer s.wd.close()
	}
	if cfg.Manual {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(cfg.Tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Step(time.Duration(float64(now.Sub(last)) * cfg.Speed))
			last = now
		}
	}
}

// Step advances the simulation by dt of sim time (nothing without a model).
func (s *Server) Step(dt time.Duration) {
	if s.model == nil || s.bank == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bank.Update(func(m *Memory) { s.model.Step(dt, m) })
}

// Watchdog is the state of the simulator's comm-loss watchdog (the zero
// state for Serve).
func (s *Server) Watchdog() WatchdogState {
	if s.wd == nil {
		return WatchdogState{}
	}
	return s.wd.snapshot()
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Bank is the model's memory (nil for Serve).
func (s *Server) Bank() *Bank { return s.bank }

// Close stops the ticker and the server and waits for both.
func (s *Server) Close() error {
	s.stop()
	<-s.done
	return nil
}
