package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/modbusserver"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// ErrNotSwitchable classifies a config change Switch cannot make while the
// bridge runs; the error names the field, and the bridge is left as it was.
var ErrNotSwitchable = errors.New("bridge: the change cannot be switched live")

// switchable are the bridge settings Switch takes over live; every other
// setting under bridge: must stay as it is.
var switchable = map[string]bool{"bridge.modbus.map": true}

// Switch makes the running bridge serve p, the plant of cfg (the next
// generation of the partition after a hand-over), in place of its plant,
// without stopping anything:
//
//   - the embedded broker keeps running: every client stays connected and
//     keeps its subscriptions, retained messages and persistent session;
//   - the Sparkplug edge node keeps its MQTT session and bdSeq and
//     publishes no NDEATH; it rebirths (DDEATH of devices that are gone,
//     one NBIRTH with seq 0, DBIRTHs) only when the metrics changed
//     (sparkplug.Node.Switch);
//   - the JSON topics continue on their session; tags that are gone have
//     their retained topics cleared, new ones are published;
//   - the Modbus server keeps its listener and client connections and
//     switches to cfg's register map atomically;
//   - the metrics endpoint and the audit log stay.
//
// The tags and the register map (bridge.modbus.map) may change. Any other
// change under bridge: — listen addresses, the broker URL, credentials and
// users, TLS files, client id, QoS, keep-alive, the store-and-forward
// buffer, the Sparkplug group, node (or the metadata they default to),
// primary host and integrity period, the JSON prefix, the Modbus unit id,
// limits and TLS, enabling or disabling a server — is refused with an
// error that wraps ErrNotSwitchable and names the field; so is a register
// map that does not fit p's tags (modbusserver.ErrMap). Nothing changes
// then, and the caller decides (stop the bridge and start a new one).
//
// Switch returns once no server uses the old plant any more: writes still
// waiting for the old executive are waited for, bounded by ctx, so the
// caller may then release the old plant's region. Any other error (ctx
// ended, Run not running) may leave the bridge partly switched: stop it.
func (b *Bridge) Switch(ctx context.Context, cfg *configs.Config, p plant.Plant) error {
	b.switchMu.Lock()
	defer b.switchMu.Unlock()
	b.mu.Lock()
	old, oldCfg, ran := b.plant, b.cfg, b.ran
	b.mu.Unlock()
	if !ran {
		return errors.New("bridge: Switch before Run")
	}
	if field := unswitchable(oldCfg, cfg); field != "" {
		return fmt.Errorf("%w: %s changes; stop the bridge and start it with the new config", ErrNotSwitchable, field)
	}
	next := newServed(audit.Wrap(p, b.audit))
	var regs *modbusserver.Map
	if b.modbus != nil {
		m, err := modbusserver.NewMap(cfg.Bridge.Modbus.Map, next)
		if err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		regs = m
	}
	// The edge node first: it refuses device ids it cannot publish before
	// anything has changed.
	if b.node != nil {
		if err := b.node.Switch(ctx, next); err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
	}
	if b.json != nil {
		if err := b.json.Switch(ctx, next); err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
	}
	if regs != nil {
		b.modbus.Switch(regs)
	}
	b.mu.Lock()
	b.plant, b.cfg = next, cfg
	b.mu.Unlock()
	if err := old.close(ctx); err != nil {
		return fmt.Errorf("bridge: calls to the old plant still in progress: %w", err)
	}
	b.log.Info("bridge: switched to a new plant", "tags", len(next.Tags()))
	return nil
}

// unswitchable names the first bridge setting (or "" when none) that
// differs between old and nc and that Switch cannot take over: every field
// of configs.Bridge but those in switchable, and the Sparkplug ids the
// metadata defaults.
func unswitchable(old, nc *configs.Config) string {
	og, on := identity(old)
	ng, nn := identity(nc)
	switch {
	case og != ng:
		return "bridge.sparkplug.group (or metadata.site, its default)"
	case on != nn:
		return "bridge.sparkplug.node (or metadata.name, its default)"
	}
	return firstDiff("bridge", reflect.ValueOf(old.Bridge), reflect.ValueOf(nc.Bridge))
}

var posType = reflect.TypeFor[configs.Pos]()

// firstDiff walks two values of a config type and returns the YAML path of
// the first field that differs, skipping positions and switchable paths.
func firstDiff(path string, a, b reflect.Value) string {
	if switchable[path] {
		return ""
	}
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Type == posType || !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if d := firstDiff(path+"."+name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if a.Len() != b.Len() {
			return path
		}
		for i := range a.Len() {
			if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path
			}
			return ""
		}
		return firstDiff(path, a.Elem(), b.Elem())
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return path
	}
	return ""
}

// served is the plant the bridge's servers use (audited), with a count of
// the calls into it in progress. Once a Switch has put another in its
// place, close refuses new calls and waits for those in progress, so no
// scan or write touches the old region after Switch returns.
type served struct {
	p plant.Plant

	mu     sync.Mutex
	calls  int
	closed bool
	idle   chan struct{} // closed once closed and no call is in progress
}

func newServed(p plant.Plant) *served { return &served{p: p, idle: make(chan struct{})} }

// errSwitched answers a call that comes after the plant was switched.
var errSwitched = fmt.Errorf("bridge: the plant was switched for the next generation's: %w", wire.ErrNotRunning)

func (s *served) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.calls++
	return true
}

func (s *served) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls--; s.closed && s.calls == 0 {
		close(s.idle)
	}
}

// close refuses further calls and waits, bounded by ctx, until none is in
// progress.
func (s *served) close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.calls == 0 {
			close(s.idle)
		}
	}
	s.mu.Unlock()
	select {
	case <-s.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Tags implements plant.Plant.
func (s *served) Tags() []tag.Info { return s.p.Tags() }

// Snapshot implements plant.Plant.
//
// Hot path: every server's scan; it allocates nothing.
func (s *served) Snapshot(dst []tag.Sample, text []string) (uint64, error) {
	if !s.enter() {
		return 0, errSwitched
	}
	defer s.leave()
	return s.p.Snapshot(dst, text)
}

// Health implements plant.Plant; a switched plant reads as down.
func (s *served) Health() plant.Health {
	if !s.enter() {
		return plant.Health{State: wire.Down, Fault: errSwitched.Error()}
	}
	defer s.leave()
	return s.p.Health()
}

// Write implements plant.Plant.
func (s *served) Write(ctx context.Context, c wire.Command) (wire.Result, error) {
	if !s.enter() {
		return wire.Result{}, errSwitched
	}
	defer s.leave()
	return s.p.Write(ctx, c)
}

// WriteAll implements plant.Batcher (the Modbus server's multi-tag
// writes) over a plant that is one; over one that is not it refuses
// rather than write tag by tag.
func (s *served) WriteAll(ctx context.Context, cs []wire.Command) ([]wire.Result, error) {
	if !s.enter() {
		return nil, errSwitched
	}
	defer s.leave()
	b, ok := s.p.(plant.Batcher)
	if !ok {
		return nil, fmt.Errorf("bridge: the plant cannot apply %d writes as one: %w", len(cs), wire.ErrUnsupported)
	}
	return b.WriteAll(ctx, cs)
}
