// Package bridgetest has fakes and real-peer helpers for testing the bridge:
// an in-memory Plant that behaves like the executive, a mosquitto broker
// started on a free loopback port, and mosquitto_sub subscribers (MQTT 3.1.1
// or 5) whose connection a test can watch.
//
// Plant needs nothing; Mosquitto needs the mosquitto binary (Debian
// mosquitto), MosquittoSub the mosquitto_sub binary (Debian
// mosquitto-clients); each skips the calling test with the reason when its
// binary is missing.
package bridgetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Plant is an in-memory executive: a process image the test changes with
// Set, writes queued in a bounded command ring and applied at the start of
// the next cycle (Step, or every period after Start), validated against the
// tag directory like the executive does.
type Plant struct {
	info []tag.Info

	mu      sync.Mutex
	samples []tag.Sample
	text    []string
	seq     uint64
	health  plant.Health
	ring    []pending
	ringCap int
	clock   func() time.Time
	// Writes is every write applied, in order.
	applied []wire.Command
}

// pending is one unit of commands (one for Write, several for WriteAll).
type pending struct {
	cs   []wire.Command
	done chan outcome
}

type outcome struct {
	res []wire.Result
	err error
}

// NewPlant builds a running fake plant from a tag table.
// ring is the command ring's capacity (0: shm.DefaultCommands, 256, as
// the region's).
func NewPlant(t *tag.Table, ring int) *Plant {
	if ring <= 0 {
		ring = 256
	}
	p := &Plant{
		info:    append([]tag.Info(nil), t.Info...),
		samples: append([]tag.Sample(nil), t.Samples...),
		text:    append([]string(nil), t.Text...),
		ringCap: ring,
		clock:   time.Now,
		health: plant.Health{State: wire.Running, RT: true, Tasks: []plant.TaskHealth{{
			Name: "main", Period: 10 * time.Millisecond,
			Wakeup: plant.Percentiles{P50: 8 * time.Microsecond, P99: 21 * time.Microsecond, P999: 35 * time.Microsecond, Max: 48 * time.Microsecond},
			Exec:   plant.Percentiles{P50: 3 * time.Microsecond, P99: 9 * time.Microsecond, P999: 14 * time.Microsecond, Max: 20 * time.Microsecond},
		}}},
	}
	return p
}

// NewPlantFromConfig is NewPlant(cfg.TagTable(), ring).
func NewPlantFromConfig(cfg *configs.Config, ring int) (*Plant, error) {
	t, err := cfg.TagTable()
	if err != nil {
		return nil, err
	}
	return NewPlant(t, ring), nil
}

// SetClock replaces the clock that stamps samples.
func (p *Plant) SetClock(now func() time.Time) {
	p.mu.Lock()
	p.clock = now
	p.mu.Unlock()
}

// Tags implements plant.Plant.
func (p *Plant) Tags() []tag.Info { return p.info }

// Snapshot implements plant.Plant.
func (p *Plant) Snapshot(dst []tag.Sample, text []string) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(dst) < len(p.samples) || len(text) < len(p.text) {
		return 0, fmt.Errorf("bridgetest: snapshot buffers hold %d/%d, need %d", len(dst), len(text), len(p.samples))
	}
	copy(dst, p.samples)
	copy(text, p.text)
	return p.seq, nil
}

// Health implements plant.Plant.
func (p *Plant) Health() plant.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health
	h.Tasks = append([]plant.TaskHealth(nil), h.Tasks...)
	return h
}

// Write implements plant.Plant: it checks the write (plant.Check), queues
// it in the ring and waits for the cycle that applies it.
func (p *Plant) Write(ctx context.Context, c wire.Command) (wire.Result, error) {
	res, err := p.WriteAll(ctx, []wire.Command{c})
	if len(res) == 0 {
		return wire.Result{}, err
	}
	return res[0], err
}

// WriteAll implements plant.Batcher: every write is checked
// (plant.Check), the unit takes len(cs) slots of the ring and the cycle
// that takes it applies all of them or none.
func (p *Plant) WriteAll(ctx context.Context, cs []wire.Command) ([]wire.Result, error) {
	for i := range cs {
		if err := plant.Check(p.info, &cs[i]); err != nil {
			return nil, err
		}
	}
	if len(cs) > p.ringCap {
		return nil, fmt.Errorf("bridgetest: a unit of %d commands does not fit the command ring (%d slots); send at most %d at once", len(cs), p.ringCap, p.ringCap)
	}
	done := make(chan outcome, 1)
	p.mu.Lock()
	if !p.health.State.Accepting() {
		st := p.health.State
		p.mu.Unlock()
		return nil, fmt.Errorf("bridgetest: executive %s: %w", st, wire.ErrNotRunning)
	}
	if p.queued()+len(cs) > p.ringCap {
		p.mu.Unlock()
		return nil, fmt.Errorf("bridgetest: %d commands queued: %w", p.ringCap, wire.ErrBusy)
	}
	p.ring = append(p.ring, pending{cs: append([]wire.Command(nil), cs...), done: done})
	p.mu.Unlock()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("bridgetest: waiting for the executive: %w", ctx.Err())
	}
}

// Step runs one cycle: the cycle counter advances and the queued writes are
// applied (or rejected when the executive is not running). A unit's
// commands are all checked first: one refused, the others are answered
// wire.Withdrawn and none is applied.
func (p *Plant) Step() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.health.Cycle++
	for i := range p.health.Tasks {
		p.health.Tasks[i].Cycles++
	}
	ring := p.ring
	p.ring = nil
	now := p.clock().UnixNano()
	for _, q := range ring {
		res := make([]wire.Result, len(q.cs))
		var refused error
		for i := range q.cs {
			c := &q.cs[i]
			res[i] = wire.Result{ID: c.ID, Status: wire.CheckTagWrite(p.info, c.Tag, c.Value), Cycle: p.health.Cycle}
			if res[i].Status == wire.Applied && !p.health.State.Accepting() {
				res[i].Status = wire.NotRunning
			}
			if refused == nil {
				refused = res[i].Err()
			}
		}
		if refused != nil {
			for i := range res {
				if res[i].Status == wire.Applied {
					res[i].Status = wire.Withdrawn
				}
			}
			q.done <- outcome{res: res, err: refused}
			continue
		}
		for i := range q.cs {
			c := &q.cs[i]
			res[i].Old = p.samples[c.Tag].Value
			p.samples[c.Tag] = tag.Sample{Value: c.Value.Num, Quality: tag.Good, Time: now}
			if c.Value.IsText {
				p.samples[c.Tag].Value = 0
				p.text[c.Tag] = string(c.Value.Text)
			}
			p.seq++
			p.applied = append(p.applied, *c)
		}
		q.done <- outcome{res: res}
	}
}

// Start runs Step every period until ctx ends.
func (p *Plant) Start(ctx context.Context, period time.Duration) {
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.Step()
			}
		}
	}()
}

// Set changes a tag's value (good quality, stamped now), as the control
// program would.
func (p *Plant) Set(id tag.ID, v float64) {
	p.mu.Lock()
	p.samples[id] = tag.Sample{Value: v, Quality: tag.Good, Time: p.clock().UnixNano()}
	p.seq++
	p.mu.Unlock()
}

// SetText changes a string tag's value.
func (p *Plant) SetText(id tag.ID, s string) {
	p.mu.Lock()
	p.text[id] = s
	p.samples[id] = tag.Sample{Quality: tag.Good, Time: p.clock().UnixNano()}
	p.seq++
	p.mu.Unlock()
}

// SetQuality changes a tag's quality, keeping its value.
func (p *Plant) SetQuality(id tag.ID, q tag.Quality, r tag.Reason) {
	p.mu.Lock()
	p.samples[id].Quality, p.samples[id].Reason = q, r
	p.samples[id].Time = p.clock().UnixNano()
	p.seq++
	p.mu.Unlock()
}

// SetDevice changes the quality of every tag of a device (a device that
// stops answering turns bad).
func (p *Plant) SetDevice(device string, q tag.Quality, r tag.Reason) {
	for i, in := range p.info {
		if in.Device == device {
			p.SetQuality(tag.ID(i), q, r)
		}
	}
}

// SetState changes the executive's state (faulted, stopping, ...).
func (p *Plant) SetState(s wire.State, fault string) {
	p.mu.Lock()
	p.health.State, p.health.Fault = s, fault
	p.mu.Unlock()
}

// SetTask replaces the timing of the named task (added when absent).
func (p *Plant) SetTask(th plant.TaskHealth) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.health.Tasks {
		if p.health.Tasks[i].Name == th.Name {
			p.health.Tasks[i] = th
			return
		}
	}
	p.health.Tasks = append(p.health.Tasks, th)
}

// Value returns a tag's current sample.
func (p *Plant) Value(id tag.ID) tag.Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples[id]
}

// Applied returns every write applied so far.
func (p *Plant) Applied() []wire.Command {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wire.Command(nil), p.applied...)
}

// Queued is the number of writes waiting in the ring.
func (p *Plant) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queued()
}

func (p *Plant) queued() int {
	n := 0
	for _, q := range p.ring {
		n += len(q.cs)
	}
	return n
}

// Refusals is a plant.Refuser that keeps what it is given, as the audit
// log would record it.
type Refusals struct {
	mu sync.Mutex
	rs []plant.Refusal
}

// Refuse implements plant.Refuser.
func (r *Refusals) Refuse(_ context.Context, x plant.Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rs = append(r.rs, x)
}

// All is every refusal so far, in order.
func (r *Refusals) All() []plant.Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]plant.Refusal(nil), r.rs...)
}

var (
	_ plant.Plant   = (*Plant)(nil)
	_ plant.Batcher = (*Plant)(nil)
)
