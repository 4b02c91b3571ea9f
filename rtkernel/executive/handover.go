package executive

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Hand-over: a running executive (the old one) hands the outputs of the
// plant to a new one built from a changed config, without a cycle in which
// nobody drives them and without a bump in the controller state.
//
// The new executive starts in standby (Options.TakeFrom): its first
// deadline is aligned to the old one's cycle grid (the Baton it takes from
// gives the grid and takes cycles on this executive's clock; rtkernel/app
// translates for an executive on another kernel),
// and it runs its cycles — commands, inputs, blocks, image, heartbeat —
// without handing outputs to the field I/O. The supervisor then picks a
// time T on the grid a few periods ahead and sends Release(T) to the old
// executive and Take(T) to the new one.
//
// The old executive drives every cycle that starts before T; after the last
// of them (cycle N) it exports its state — every block's state by name and
// every tag it owns — and offers cycle N+1 through the baton of its
// hand-over area. At the start of cycle N+1 the new executive, if the offer
// is there, takes the baton, imports the state and drives from N+1 on. The
// old executive, after running its blocks in N+1 and before writing
// outputs, tries to keep the baton: it fails once the new one took it, and
// from then on writes nothing (not even safe values when it stops). If the
// offer came late (the old cycle overran), the old one keeps N+1, drives
// it, offers again, and the new one retries at N+2: every cycle has exactly
// one driver. Nothing waits: both sides decide with one compare-and-swap.

// Baton is a hand-over area (*shm.HandOver): the published cycle grid, the
// exported state and the word that gives each cycle one driver. Every
// method is called on the first task's thread except Grid (at start).
type Baton interface {
	SetGrid(origin, period int64)
	Grid() (origin, period int64, ok bool)
	Reset()
	Offer(after int64, blob []byte) bool
	Keep(sched int64) bool
	Take(sched int64, dst []byte) (after int64, blob []byte, ok bool)
	Cap() int
}

// StateCarrier is implemented by programs whose state can be carried to a
// program compiled from a changed config (*blocks.TaskProgram).
type StateCarrier interface {
	ExportLen() int
	ExportState(dst []byte) []byte
	ImportState(src []byte) (wire.BlockCounts, error)
}

// HandOverStatus are the executive's hand-over counters: the ones its
// region publishes (Switch on this executive's monotonic clock) and a few
// for its own status.
type HandOverStatus struct {
	wire.HandOverCounters
	// LastDriven is the scheduled start of the old side's last driven cycle.
	LastDriven time.Duration
	// Tags counts tag values carried over (taking side).
	Tags int
	// OfferFailed counts exports that did not fit the hand-over area.
	OfferFailed uint64
	// ImportFailed counts offers the taking side could not import.
	ImportFailed uint64
}

// handover is the first task's hand-over state. The fields without atomics
// belong to the first task's thread.
type handover struct {
	own, from Baton
	releaseAt time.Duration // 0: no release requested
	takeAt    time.Duration // 0: no take requested
	blob      []byte        // export buffer
	dst       []byte        // import buffer
	drove     bool          // this cycle handed outputs to the I/O

	mode                                     atomic.Uint64
	driven, standby, released, retries, miss atomic.Uint64
	offerFailed, importFailed                atomic.Uint64
	switchAt, lastDriven                     atomic.Int64
	carried, fresh, dropped, tags            atomic.Int64
}

func newHandover(own, from Baton) *handover {
	h := &handover{own: own, from: from}
	if own != nil {
		h.blob = make([]byte, 0, own.Cap())
	}
	if from != nil {
		h.dst = make([]byte, from.Cap())
		h.mode.Store(uint64(wire.Standby))
	}
	return h
}

func (h *handover) status() HandOverStatus {
	return HandOverStatus{HandOverCounters: wire.HandOverCounters{Mode: wire.HandOverMode(h.mode.Load()), Driven: h.driven.Load(),
		Standby: h.standby.Load(), Released: h.released.Load(), Retries: h.retries.Load(), Missed: h.miss.Load(), Switch: h.switchAt.Load(),
		Blocks: wire.BlockCounts{Carried: int(h.carried.Load()), Fresh: int(h.fresh.Load()), Dropped: int(h.dropped.Load())}},
		LastDriven: time.Duration(h.lastDriven.Load()), Tags: int(h.tags.Load()), OfferFailed: h.offerFailed.Load(), ImportFailed: h.importFailed.Load()}
}

// silent reports whether the executive must not hand anything to the field
// I/O: on standby, or after handing over.
func (t *task) silent() bool {
	if t.ho == nil {
		return false
	}
	m := wire.HandOverMode(t.ho.mode.Load())
	return m == wire.Standby || m == wire.Released
}

// write hands ids to the field I/O unless the executive is silent. Hot path.
func (t *task) write(ids []tag.ID) {
	if t.silent() {
		return
	}
	t.e.io.WriteOutputs(t.tab, ids)
}

// takeOver runs at the start of a standby cycle whose time has come: it
// takes the baton, imports the old executive's state and switches to
// driving. First task, hot path: no allocation unless the state is
// imported (once).
func (t *task) takeOver() {
	h := t.ho
	if wire.HandOverMode(h.mode.Load()) != wire.Standby || h.takeAt == 0 || t.sched < h.takeAt {
		return
	}
	after, blob, ok := h.from.Take(int64(t.sched), h.dst)
	if !ok {
		h.retries.Add(1)
		return
	}
	// From here on this executive owns the outputs, imported or not: the
	// old one will not drive this cycle.
	if !t.importState(blob) {
		h.importFailed.Add(1)
	}
	if gap := (t.sched - time.Duration(after)) / t.period; gap > 1 {
		h.miss.Add(uint64(gap - 1))
	}
	h.lastDriven.Store(after)
	h.switchAt.Store(int64(t.sched))
	h.mode.Store(uint64(wire.Driving))
}

// claim decides, after the blocks ran and before outputs are written,
// whether the releasing executive drives this cycle. Hot path.
func (t *task) claim() {
	h := t.ho
	h.drove = false
	switch wire.HandOverMode(h.mode.Load()) {
	case wire.Standby:
		h.standby.Add(1)
		return
	case wire.Released:
		h.released.Add(1)
		return
	case wire.Releasing:
		if t.sched >= h.releaseAt && !h.own.Keep(int64(t.sched)) {
			h.mode.Store(uint64(wire.Released))
			h.switchAt.Store(int64(t.sched))
			h.released.Add(1)
			return
		}
	}
	h.drove = true
	h.driven.Add(1)
}

// offer runs at the end of a cycle the releasing executive drove: after the
// last cycle before the release time (and after each one it kept) it
// exports its state and offers the next cycle. Hot path: no allocation.
func (t *task) offer() {
	h := t.ho
	if !h.drove || wire.HandOverMode(h.mode.Load()) != wire.Releasing || t.sched+t.period < h.releaseAt {
		return
	}
	h.lastDriven.Store(int64(t.sched))
	if blob := t.exportState(); blob == nil || !h.own.Offer(int64(t.sched), blob) {
		h.offerFailed.Add(1)
	}
}

// release starts a release at time at (first task, from a command).
func (t *task) release(at time.Duration) wire.Status {
	h := t.ho
	if h == nil || h.own == nil || len(t.e.tasks) > 1 {
		return wire.Unsupported
	}
	if wire.HandOverMode(h.mode.Load()) != wire.Driving || wire.State(t.e.state.Load()) != wire.Running {
		return wire.NotRunning
	}
	if _, ok := t.prog.(StateCarrier); !ok {
		return wire.Unsupported
	}
	h.own.Reset()
	h.releaseAt = at
	h.mode.Store(uint64(wire.Releasing))
	return wire.Applied
}

// take arms the take-over at time at (first task, from a command).
func (t *task) take(at time.Duration) wire.Status {
	h := t.ho
	if h == nil || h.from == nil {
		return wire.Unsupported
	}
	if wire.HandOverMode(h.mode.Load()) != wire.Standby {
		return wire.NotRunning
	}
	h.takeAt = at
	return wire.Applied
}

// The executive's state export: "mkho", u16 version, u16 flags, u64 cycle,
// i64 scheduled start, u32 tag count, the tags (u8 name length, name, u8
// type length, type, f64 value, u8 quality, u8 reason, i64 time, u16 text
// length, text), u32 program state length, the program state
// (blocks.TaskProgram.ExportState).
const (
	hoMagic   = "mkho"
	hoVersion = 1
)

// exportLen bounds what exportState writes.
func (t *task) exportLen() int {
	n := 4 + 2 + 2 + 8 + 8 + 4 + 4
	for i := range t.tab.Info {
		in := &t.tab.Info[i]
		n += 1 + min(len(in.Name), 255) + 1 + len(in.Type) + 8 + 2 + 8 + 2 + min(len(t.tab.Text[i]), math.MaxUint16)
	}
	if sc, ok := t.prog.(StateCarrier); ok {
		n += sc.ExportLen()
	}
	return n
}

// carried reports whether a tag's value travels in a hand-over: every tag
// but a device's inputs (the new executive reads those itself).
func carried(in *tag.Info) bool { return in.Device == "" || in.Access.Writable() }

// exportState writes the task's tags and program state into the hand-over
// buffer; nil when they do not fit the hand-over area. Hot path: no
// allocation (the buffer is sized from the area).
func (t *task) exportState() []byte {
	le := binary.LittleEndian
	b := t.ho.blob[:0]
	if t.exportLen() > cap(b) {
		return nil
	}
	b = append(b, hoMagic...)
	b = le.AppendUint16(b, hoVersion)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, t.cycle)
	b = le.AppendUint64(b, uint64(t.sched))
	n := 0
	for i := range t.tab.Info {
		if carried(&t.tab.Info[i]) {
			n++
		}
	}
	b = le.AppendUint32(b, uint32(n))
	for i := range t.tab.Info {
		in := &t.tab.Info[i]
		if !carried(in) {
			continue
		}
		s := &t.tab.Samples[i]
		name := in.Name[:min(len(in.Name), 255)]
		b = append(b, byte(len(name)))
		b = append(b, name...)
		b = append(b, byte(len(in.Type)))
		b = append(b, in.Type...)
		b = le.AppendUint64(b, math.Float64bits(s.Value))
		b = append(b, byte(s.Quality), byte(s.Reason))
		b = le.AppendUint64(b, uint64(s.Time))
		text := t.tab.Text[i]
		text = text[:min(len(text), math.MaxUint16)]
		b = le.AppendUint16(b, uint16(len(text)))
		b = append(b, text...)
	}
	lenAt := len(b)
	b = le.AppendUint32(b, 0)
	if sc, ok := t.prog.(StateCarrier); ok {
		b = sc.ExportState(b)
	}
	le.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	t.ho.blob = b
	return b
}

// importState loads an export of the old executive: tag values by name and
// type (device inputs excepted), then the program state by block name.
// Runs once, at the switch; false when the export is malformed (nothing of
// the program state is then loaded; the blocks start fresh).
func (t *task) importState(p []byte) bool {
	le := binary.LittleEndian
	if len(p) < 28 || string(p[:4]) != hoMagic || le.Uint16(p[4:]) != hoVersion {
		return false
	}
	n := int(le.Uint32(p[24:]))
	off := 28
	take := func(k int) ([]byte, bool) {
		if k < 0 || off+k > len(p) {
			return nil, false
		}
		s := p[off : off+k]
		off += k
		return s, true
	}
	tags := 0
	for range n {
		ln, ok := take(1)
		if !ok {
			return false
		}
		name, ok := take(int(ln[0]))
		if !ok {
			return false
		}
		if ln, ok = take(1); !ok {
			return false
		}
		typ, ok := take(int(ln[0]))
		if !ok {
			return false
		}
		fix, ok := take(8 + 2 + 8 + 2)
		if !ok {
			return false
		}
		text, ok := take(int(le.Uint16(fix[18:])))
		if !ok {
			return false
		}
		id, found := t.tab.Lookup(string(name))
		if !found {
			continue
		}
		in := &t.tab.Info[id]
		if !carried(in) || string(in.Type) != string(typ) {
			continue
		}
		t.tab.Samples[id] = tag.Sample{Value: math.Float64frombits(le.Uint64(fix)), Quality: tag.Quality(fix[8]),
			Reason: tag.Reason(fix[9]), Time: int64(le.Uint64(fix[10:]))}
		if len(text) > 0 || t.tab.Text[id] != "" {
			t.tab.Text[id] = string(text)
		}
		tags++
	}
	t.ho.tags.Store(int64(tags))
	ln, ok := take(4)
	if !ok {
		return false
	}
	prog, ok := take(int(le.Uint32(ln)))
	if !ok || off != len(p) {
		return false
	}
	sc, ok := t.prog.(StateCarrier)
	if !ok {
		return len(prog) == 0
	}
	st, err := sc.ImportState(prog)
	if err != nil {
		return false
	}
	t.ho.carried.Store(int64(st.Carried))
	t.ho.fresh.Store(int64(st.Fresh))
	t.ho.dropped.Store(int64(st.Dropped))
	return true
}

// alignToGrid returns the first point of the grid origin + k*period at or
// after at.
func alignToGrid(at, origin, period time.Duration) time.Duration {
	if period <= 0 || at <= origin {
		if period > 0 {
			return origin - (origin-at)/period*period
		}
		return at
	}
	k := (at - origin + period - 1) / period
	return origin + k*period
}

// alignFirst moves the first deadline onto the cycle grid of the executive
// this one takes over from, and publishes this executive's grid.
func (e *Executive) alignFirst(first time.Duration) time.Duration {
	t0 := e.tasks[0]
	if h := t0.ho; h != nil && h.from != nil {
		if origin, period, ok := h.from.Grid(); ok {
			if time.Duration(period) != t0.period {
				e.log.Warn("executive: the executive taken over runs another period; cycles are aligned to its first deadline only",
					"its", time.Duration(period), "ours", t0.period)
			}
			first = alignToGrid(first, time.Duration(origin), t0.period)
		} else {
			e.log.Warn("executive: the executive to take over from has not published its cycle grid; cycles are not aligned")
		}
	}
	if h := t0.ho; h != nil && h.own != nil {
		h.own.SetGrid(int64(first), int64(t0.period))
	}
	return first
}
