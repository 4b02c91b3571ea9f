package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	gb "github.com/goburrow/modbus"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/shm/tag"
)

// Option changes how a Scanner is built.
type Option func(*Scanner)

// WithLogger logs connection state changes and write failures to l.
func WithLogger(l *slog.Logger) Option { return func(s *Scanner) { s.log = l } }

// WithClock takes the source timestamps of samples from now.
func WithClock(now func() time.Time) Option { return func(s *Scanner) { s.now = now } }

// WithDialer opens TCP connections with d instead of a net.Dialer bound to
// the device's interface.
func WithDialer(d Dialer) Option { return func(s *Scanner) { s.dialer = d } }

// WithBackoff sets the reconnect backoff of a failed device: first wait min,
// doubling up to max. The default is the poll period doubling up to 5 s.
func WithBackoff(min, max time.Duration) Option {
	return func(s *Scanner) { s.minBackoff, s.maxBackoff = min, max }
}

// inputs is one version of a device's read tags, handed to the cycle.
type inputs struct {
	samples []tag.Sample
	text    []string
}

// outputs is one version of a device's output requests, handed to the I/O
// goroutine. armed[i] is false until the executive gave tag i a value.
type outputs struct {
	values []float64
	text   []string
	armed  []bool
}

// Scanner polls one field device in its own goroutine and hands the values
// to the control cycle, and the cycle's outputs to the device.
//
// The cycle side (Latest, SetOutputs) is wait-free and allocation-free and
// must be called from one goroutine. Everything that touches the network
// happens on the Scanner's own goroutine, so a slow or dead device never
// delays the cycle or another device.
type Scanner struct {
	dev        configs.Device
	plan       *plan
	readable   []int // indexes of readable bindings
	log        *slog.Logger
	now        func() time.Time
	dialer     Dialer
	minBackoff time.Duration
	maxBackoff time.Duration

	in  triple[inputs]
	out triple[outputs]

	// Cycle-side state (owned by the goroutine calling Latest/SetOutputs).
	delivered     []float64
	deliveredText []string
	seen          []bool // Latest delivered the tag at least once
	req           outputs

	// I/O-goroutine state.
	cur           inputs
	tr            *transport
	client        gb.Client
	connect       connector
	limit         time.Time // no request waits past it (DriveSafe: its context's deadline)
	kaNext        time.Time // next keep-alive of the device's watchdog
	kaValue       uint16    // last keep-alive value the device took
	wdErr         error     // first failed write of the device watchdog since connect
	wdWarned      bool
	wrote         func(tags []int, err error) // DriveSafe: the outcome of every output write
	one           [1]int
	pk            gb.Packager
	written       []bool
	lastOut       []float64
	lastText      []string
	lastFull      time.Time
	wire          [2 * maxWriteRegisters]byte
	bits          [maxWriteBits / 8]byte
	failures      int
	noMask        bool // the device answered FC22 with illegal function
	connected     bool
	everConnected bool

	started atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}

	mu    sync.Mutex
	stats Stats
	hist  *hdr.Histogram
}

// Stats are a device's counters since Start.
type Stats struct {
	Device     string
	Polls      uint64 // completed scans (every read answered)
	Errors     uint64 // failed requests
	Timeouts   uint64 // requests that timed out
	Reconnects uint64 // connections opened after the first
	Writes     uint64 // output write requests sent
	KeepAlives uint64 // keep-alives of the device's watchdog it took
	Connected  bool
	LastError  error
	LastErrAt  time.Time
	// ScanTime is the duration of each completed scan in microseconds.
	ScanTime *hdr.Histogram
}

// NewScanner builds the scanner of dev, whose tags are found in tab by name.
// Zero-valued settings of dev take the package defaults (WithDefaults).
func NewScanner(dev configs.Device, tab *tag.Table, opts ...Option) (*Scanner, error) {
	dev = WithDefaults(dev)
	if err := checkDevice(&dev); err != nil {
		return nil, err
	}
	p, err := newPlan(dev, tab)
	if err != nil {
		return nil, err
	}
	s := &Scanner{dev: dev, plan: p, log: slog.New(slog.DiscardHandler), now: time.Now,
		minBackoff: dev.Poll.D(), maxBackoff: max(dev.Poll.D(), 5*time.Second),
		hist: hdr.New(1, 60_000_000, 3), done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.dialer == nil {
		s.dialer = newDialer(&dev)
	}
	s.connect = dialWith(s.dialer, &s.dev)
	n := len(p.bindings)
	for i := range p.bindings {
		if p.bindings[i].read {
			s.readable = append(s.readable, i)
		}
	}
	mkIn := func() inputs {
		in := inputs{samples: make([]tag.Sample, n), text: make([]string, n)}
		for i := range in.samples {
			in.samples[i] = tag.Sample{Quality: tag.Bad, Reason: tag.NotConnected}
		}
		return in
	}
	mkOut := func() outputs {
		return outputs{values: make([]float64, n), text: make([]string, n), armed: make([]bool, n)}
	}
	s.in.init(mkIn)
	s.out.init(mkOut)
	s.cur, s.req = mkIn(), mkOut()
	s.delivered, s.deliveredText, s.seen = make([]float64, n), make([]string, n), make([]bool, n)
	s.written, s.lastOut, s.lastText = make([]bool, n), make([]float64, n), make([]string, n)
	s.stats.Device = dev.Name
	s.pk = packager(&dev)
	return s, nil
}

func checkDevice(dev *configs.Device) error {
	var errs configs.Errors
	switch dev.Driver {
	case configs.DriverModbusTCP, configs.DriverModbusRTU, configs.DriverModbusRTUOverTCP:
	default:
		errs.Add(dev.Pos, "device %s: unknown driver %q (modbus-tcp, modbus-rtu or modbus-rtu-over-tcp)", dev.Name, dev.Driver)
	}
	if dev.Address == "" {
		errs.Add(dev.Pos, "device %s: no address", dev.Name)
	}
	if dev.UnitID < 0 || dev.UnitID > 255 {
		errs.Add(dev.Pos, "device %s: unit_id %d outside 0-255", dev.Name, dev.UnitID)
	}
	if err := errs.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// Name is the device's name.
func (s *Scanner) Name() string { return s.dev.Name }

// Device is the device's config with defaults filled in.
func (s *Scanner) Device() configs.Device { return s.dev }

// Reads lists the grouped read requests of one poll.
func (s *Scanner) Reads() []Request { return append([]Request(nil), s.plan.reads...) }

// Writes lists the output blocks; each is written with one request.
func (s *Scanner) Writes() []Request { return append([]Request(nil), s.plan.writes...) }

// Latest copies the newest values of the device's readable tags into
// samples and text (indexed by tag ID; text may be nil) and reports whether
// they are newer than the previous call's.
//
// Hot path (cycle): wait-free, allocation-free.
func (s *Scanner) Latest(samples []tag.Sample, text []string) bool {
	f, fresh := s.in.Front()
	for _, i := range s.readable {
		id := int(s.plan.bindings[i].id)
		if id >= len(samples) {
			continue
		}
		samples[id] = f.samples[i]
		s.delivered[i], s.seen[i] = f.samples[i].Value, true
		if id < len(text) {
			text[id] = f.text[i]
			s.deliveredText[i] = f.text[i]
		}
	}
	return fresh
}

// SetOutputs hands the values of the device's writable tags in samples and
// text (indexed by tag ID; text may be nil) to the I/O goroutine, which
// writes those that changed at its next poll. A read_write tag is written
// when the cycle changed it from the value Latest last delivered (so what
// was read is never written back, and nothing before the first Latest); a
// write-only tag once the executive gave it a value (any sample but the
// table's initial bad/not-connected one). Values are clamped to the tag's
// min and max. After a reconnect every output is written again.
//
// Hot path (cycle): wait-free, allocation-free.
func (s *Scanner) SetOutputs(samples []tag.Sample, text []string) {
	for _, i := range s.plan.masks {
		s.request(i, samples, text)
	}
	for _, r := range s.plan.writes {
		for _, i := range r.Tags {
			s.request(i, samples, text)
		}
	}
	o := s.out.Back()
	copy(o.values, s.req.values)
	copy(o.text, s.req.text)
	copy(o.armed, s.req.armed)
	s.out.Publish()
}

func (s *Scanner) request(i int, samples []tag.Sample, text []string) {
	b := &s.plan.bindings[i]
	id := int(b.id)
	if id >= len(samples) {
		return
	}
	smp := samples[id]
	if b.read && !s.seen[i] {
		return // never write back a read_write tag the cycle has not read yet
	}
	if b.typ == tag.String {
		if id < len(text) && (!b.read || text[id] != s.deliveredText[i]) {
			s.req.text[i], s.req.armed[i] = text[id], true
		}
		return
	}
	switch {
	case b.read && math.Float64bits(smp.Value) == math.Float64bits(s.delivered[i]):
		return
	case !b.read && smp.Quality == tag.Bad && smp.Reason == tag.NotConnected:
		return
	}
	s.req.values[i], s.req.armed[i] = min(max(smp.Value, b.min), b.max), true
}

// Start starts polling; it returns at once. The scanner stops when ctx ends
// or Stop is called.
func (s *Scanner) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.run(ctx)
	return nil
}

// Stop stops polling and waits for the I/O goroutine to end: at most one
// request timeout when a request is in flight. The device's tags turn bad.
func (s *Scanner) Stop() {
	if !s.started.Load() {
		return
	}
	s.cancel()
	<-s.done
}

// Stats returns a copy of the device's counters.
func (s *Scanner) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ScanTime = hdr.Import(s.hist.Export())
	return st
}

func (s *Scanner) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		s.disconnect()
		s.markAll(tag.Bad, tag.NotConnected)
		s.publish()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	next := time.Now()
	for ctx.Err() == nil {
		if time.Now().Before(next) {
			// Woken between polls for the device watchdog's keep-alive.
			if err := s.keepAliveDue(); err != nil {
				s.record(err)
				_ = s.fail(err)
				s.failures++
				next = time.Now().Add(s.backoff())
			}
		} else if err := s.scan(ctx); err != nil {
			s.failures++
			next = time.Now().Add(s.backoff())
		} else {
			s.failures = 0
			next = next.Add(s.dev.Poll.D())
			if now := time.Now(); next.Before(now) {
				next = now.Add(s.dev.Poll.D()) // overran: skip the missed polls
			}
		}
		wake := next
		if at := s.keepAliveAt(); !at.IsZero() && at.Before(wake) {
			wake = at
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// backoff is the wait before reconnecting after the n-th failure in a row:
// min doubling up to max, less up to a fifth at random so that devices
// lost together (a switch, a NIC) do not all reconnect in the same instant.
func (s *Scanner) backoff() time.Duration {
	d := s.minBackoff
	for i := 1; i < s.failures && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// scan writes changed outputs and reads every group once. It returns an
// error when the device could not be reached (after retries).
func (s *Scanner) scan(ctx context.Context) error {
	start := time.Now()
	if err := s.writeOutputs(ctx); err != nil {
		return s.fail(err)
	}
	// A device with nothing to read or write this scan is kept fed too.
	if err := s.keepAliveDue(); err != nil {
		s.record(err)
		return s.fail(err)
	}
	for gi := range s.plan.reads {
		r := &s.plan.reads[gi]
		var err error
		for attempt := 0; attempt <= max(s.dev.Retries, 0); attempt++ {
			if err = s.ensureConnected(ctx); err == nil {
				if err = s.keepAliveDue(); err == nil {
					err = s.read(r)
				}
			}
			if err == nil || !dropsConnection(err) || ctx.Err() != nil {
				break
			}
			s.record(err)
			s.disconnect()
			if errors.Is(err, ErrBadFrame) {
				// A garbled answer (noise on a serial line): the values stay,
				// stale, while the request is retried.
				s.markRead(r.Tags, tag.Stale, Reason(err))
			} else {
				// The device does not answer: every tag is bad now, within
				// one timeout, whatever the retries bring.
				s.markAll(tag.Bad, Reason(err))
			}
			s.publish()
		}
		if err != nil && dropsConnection(err) {
			return s.fail(err)
		}
		if err != nil {
			s.record(err)
			s.markRead(r.Tags, tag.Bad, Reason(err))
		}
	}
	s.publish()
	s.mu.Lock()
	s.stats.Polls++
	_ = s.hist.RecordValue(time.Since(start).Microseconds())
	s.mu.Unlock()
	return nil
}

// fail marks every tag bad after the device could not be reached; err was
// recorded where it happened.
func (s *Scanner) fail(err error) error {
	s.disconnect()
	s.markAll(tag.Bad, Reason(err))
	s.publish()
	return err
}

func (s *Scanner) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Errors++
	if errors.Is(err, ErrTimeout) {
		s.stats.Timeouts++
	}
	s.stats.LastError, s.stats.LastErrAt = err, s.now()
}

func (s *Scanner) ensureConnected(ctx context.Context) error {
	if s.tr != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, s.dev.Timeout.D())
	defer cancel()
	tr, err := open(dctx, &s.dev, s.connect)
	if err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return &RequestError{Device: s.dev.Name, Op: "connect", Err: err}
	}
	return s.attach(tr)
}

// attach takes a new connection into use: every output is to be written
// again, and the device's own watchdog is armed before any other request.
func (s *Scanner) attach(tr *transport) error {
	s.tr, s.client = tr, gb.NewClient2(s.pk, tr)
	// A device that was away may have restarted with its outputs reset:
	// every output is written again.
	clear(s.written)
	s.mu.Lock()
	if s.everConnected {
		s.stats.Reconnects++
	}
	s.everConnected = true
	s.stats.Connected = true
	s.mu.Unlock()
	if !s.connected {
		s.log.Info("modbus: device connected", "device", s.dev.Name, "address", s.dev.Address)
	}
	s.connected = true
	if err := s.armWatchdog(); err != nil {
		s.disconnect()
		return err
	}
	return nil
}

func (s *Scanner) disconnect() {
	if s.tr == nil {
		return
	}
	_ = s.tr.Close()
	s.tr, s.client = nil, nil
	s.mu.Lock()
	s.stats.Connected = false
	s.mu.Unlock()
	if s.connected {
		s.log.Warn("modbus: device disconnected", "device", s.dev.Name, "err", s.stats.LastError)
	}
	s.connected = false
}

// do runs one request with the device's deadline and classifies its error.
func (s *Scanner) do(op func(c gb.Client) ([]byte, error), what func() string) ([]byte, error) {
	dl := time.Now().Add(s.dev.Timeout.D())
	if !s.limit.IsZero() && s.limit.Before(dl) {
		dl = s.limit
	}
	s.tr.deadline = dl
	res, err := op(s.client)
	if err != nil {
		return nil, &RequestError{Device: s.dev.Name, Op: what(), Err: classify(err)}
	}
	return res, nil
}

func (s *Scanner) read(r *Request) error {
	addr, qty := uint16(r.Address), uint16(r.Quantity)
	res, err := s.do(func(c gb.Client) ([]byte, error) {
		switch r.Function {
		case gb.FuncCodeReadCoils:
			return c.ReadCoils(addr, qty)
		case gb.FuncCodeReadDiscreteInputs:
			return c.ReadDiscreteInputs(addr, qty)
		case gb.FuncCodeReadHoldingRegisters:
			return c.ReadHoldingRegisters(addr, qty)
		}
		return c.ReadInputRegisters(addr, qty)
	}, r.readOp)
	if err != nil {
		return err
	}
	want := 2 * r.Quantity
	if r.Function <= gb.FuncCodeReadDiscreteInputs {
		want = (r.Quantity + 7) / 8
	}
	if len(res) != want {
		return &RequestError{Device: s.dev.Name, Op: r.readOp(),
			Err: fmt.Errorf("%w: %d data bytes, want %d", ErrBadFrame, len(res), want)}
	}
	now := s.now().UnixNano()
	for _, i := range r.Tags {
		b := &s.plan.bindings[i]
		off := b.addr - r.Address
		var raw float64
		if b.bitArea() {
			raw = getBit(res, off)
		} else {
			raw = s.decode(b, res[2*off:2*(off+b.regs)], i)
		}
		v := raw
		if b.typ.Numeric() {
			v = raw*b.scale + b.offset
		}
		smp := tag.Sample{Value: v, Quality: tag.Good, Time: now}
		if v < b.min || v > b.max || math.IsNaN(v) {
			smp.Quality, smp.Reason = tag.Uncertain, tag.OutOfRange
		}
		s.cur.samples[i] = smp
	}
	return nil
}

// decode reads binding b (index i) from its registers: a string into the
// current text, a number or one bit as the raw value it returns.
//
// Hot path (I/O goroutine): allocation-free while strings do not change.
func (s *Scanner) decode(b *binding, wire []byte, i int) float64 {
	switch {
	case b.typ == tag.String:
		s.cur.text[i] = register.DecodeString(wire, b.order, b.length, s.cur.text[i])
		return 0
	case b.bit >= 0:
		if register.Bit(wire, b.order, b.bit) {
			return 1
		}
		return 0
	}
	// A field device's value is taken as it comes: a bool register other
	// than 0 is true and a NaN or infinity is flagged out of range by the
	// caller, so Decode's ErrNotBool and ErrNotFinite change nothing here.
	raw, _ := register.Decode(wire, b.typ, b.order)
	return raw
}

func (r *Request) readOp() string {
	return fmt.Sprintf("read %s %d+%d", r.Area, r.Address, r.Quantity)
}

// markRead degrades the given tags; Stale only replaces Good.
func (s *Scanner) markRead(idx []int, q tag.Quality, why tag.Reason) {
	for _, i := range idx {
		smp := &s.cur.samples[i]
		if q == tag.Stale && smp.Quality != tag.Good {
			continue
		}
		smp.Quality, smp.Reason = q, why
	}
}

func (s *Scanner) markAll(q tag.Quality, why tag.Reason) {
	for _, r := range s.plan.reads {
		s.markRead(r.Tags, q, why)
	}
}

// publish hands the current inputs to the cycle.
func (s *Scanner) publish() {
	b := s.in.Back()
	copy(b.samples, s.cur.samples)
	copy(b.text, s.cur.text)
	s.in.Publish()
}
