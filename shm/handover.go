package shm

import (
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// The hand-over area carries a running executive's state to the executive
// that replaces it (a changed config on standby cores) and decides, cycle
// by cycle, which of the two drives the outputs.
//
// Layout (offsets in the section):
//
//	line 0  baton: one word, kind<<62 | scheduled start (monotonic ns) of a cycle
//	line 1  grid: the first task's first deadline and period (monotonic ns),
//	        and the clock's identity (the writer kernel's boot ID)
//	line 2  counters of the writer's hand-over (HandOverCounters)
//	line 3  blob seqlock: sequence, length, scheduled start of the cycle it follows
//	then    the blob (capacity from the header)
//
// The baton makes the switch exact without either side waiting: the
// releasing executive, after the last cycle it must drive, exports its
// state into the blob and *offers* the next cycle. At the start of each
// following cycle the taking executive tries to swap offered → taken and
// the releasing one offered → kept; exactly one swap succeeds, so every
// cycle has exactly one driver. A kept cycle is driven by the old
// executive, which offers again after it; a taken cycle is the new
// executive's first.
const (
	handOverHead     = 4 * lineSize
	handOverPerBlock = 256
	maxHandOver      = 64 << 20

	hoBaton       = 0
	hoGridOrigin  = 64
	hoGridPeriod  = 72
	hoClockID     = 80  // 16 bytes
	hoCounters    = 128 // 8 words
	hoBlobSeq     = 192
	hoBlobLen     = 200
	hoBlobAfter   = 208
	hoBlob        = handOverHead
	batonKindBits = 62
	batonTimeMask = 1<<batonKindBits - 1
)

// Baton kinds (the top two bits of the baton word).
const (
	batonNone    = 0
	batonOffered = 1 // the releasing side exported its state after the cycle in the low bits
	batonKept    = 2 // the releasing side drives the cycle in the low bits
	batonTaken   = 3 // the taking side drives from the cycle in the low bits
)

// defaultHandOver is the blob capacity for tags tags with text string bytes:
// 64 KiB for block state plus room for every tag's name, value and text.
func defaultHandOver(tags, text int) int {
	return int(roundUp(uint64(64<<10+tags*(nameMax+40)+text), 8))
}

func textBytes(info []tag.Info) int {
	n := 0
	for _, in := range info {
		if in.Type == tag.String {
			n += int(textCap(in.Length))
		}
	}
	return n
}

// HandOver is a region's hand-over area. The executive that owns the
// region offers its state and keeps or loses the baton through it; the
// executive that replaces it maps the same region and takes. Every method
// is safe for concurrent use by the two processes and allocates nothing.
type HandOver struct {
	m   mem
	off int
	cap int
	hb  int // the heartbeat section
}

func newHandOver(m mem, g *geom) *HandOver {
	return &HandOver{m: m, off: int(g.Sec[secHandOver].Off), cap: int(g.HandOver), hb: int(g.Sec[secHeartbeat].Off)}
}

// HandOver is the writer's hand-over area.
func (w *Writer) HandOver() *HandOver { return newHandOver(w.m, &w.l.g) }

// HandOver is the region's hand-over area, for the supervisor.
func (r *Reader) HandOver() *HandOver { return newHandOver(r.m, &r.l.g) }

// OpenHandOver checks r's header and returns its hand-over area, for the
// executive taking over from the region's writer (whose config differs
// from its own).
func OpenHandOver(r *Region) (*HandOver, error) {
	g, err := decodeHeader(r.mem)
	if err != nil {
		return nil, fmt.Errorf("shm: hand-over area of %s: %w", r, err)
	}
	return newHandOver(mem(r.mem[:g.Size]), &g), nil
}

// Cap is the largest blob Offer takes.
func (h *HandOver) Cap() int { return h.cap }

// SetGrid publishes the first task's cycle grid: its first deadline and
// period on the monotonic clock (ns).
func (h *HandOver) SetGrid(origin, period int64) {
	h.m.store(h.off+hoGridOrigin, uint64(origin))
	h.m.store(h.off+hoGridPeriod, uint64(period))
}

// Grid is the published cycle grid; ok is false before the writer set it.
func (h *HandOver) Grid() (origin, period int64, ok bool) {
	p := int64(h.m.load(h.off + hoGridPeriod))
	return int64(h.m.load(h.off + hoGridOrigin)), p, p > 0
}

// ClockID names the clock the region's times are on: the boot ID of the
// writer's kernel (/proc/sys/kernel/random/boot_id), whose CLOCK_MONOTONIC
// they are. Two executives with the same ID share the clock; a hand-over
// between kernels must translate times (rtkernel/app does).
type ClockID [16]byte

// IsZero reports an unpublished ID.
func (c ClockID) IsZero() bool { return c == ClockID{} }

func (c ClockID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", c[0:4], c[4:6], c[6:8], c[8:10], c[10:16])
}

// ParseClockID parses a boot ID as the kernel prints it.
func ParseClockID(s string) (ClockID, error) {
	var c ClockID
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	if err != nil || len(b) != len(c) {
		return c, fmt.Errorf("shm: %q is not a boot ID (a UUID)", strings.TrimSpace(s))
	}
	copy(c[:], b)
	return c, nil
}

// SetClockID publishes the identity of the writer's clock.
func (h *HandOver) SetClockID(c ClockID) {
	h.m.store(h.off+hoClockID, le.Uint64(c[:8]))
	h.m.store(h.off+hoClockID+8, le.Uint64(c[8:]))
}

// ClockID is the published identity of the writer's clock (zero when the
// writer did not publish one).
func (h *HandOver) ClockID() ClockID {
	var c ClockID
	le.PutUint64(c[:8], h.m.load(h.off+hoClockID))
	le.PutUint64(c[8:], h.m.load(h.off+hoClockID+8))
	return c
}

// Beat is the writer's clock (monotonic ns) when it finished the last
// cycle of its first task: the heartbeat's time. An executive on another
// kernel estimates the offset between the two clocks from it.
func (h *HandOver) Beat() int64 { return int64(h.m.load(h.hb + hbMono)) }

// Reset clears the baton (a release starts from it).
func (h *HandOver) Reset() { h.m.store(h.off+hoBaton, 0) }

func baton(kind uint64, sched int64) uint64 {
	return kind<<batonKindBits | uint64(sched)&batonTimeMask
}

// Offer publishes blob as the releasing executive's state after the cycle
// scheduled at after, then offers the next cycle. It reports false (and
// offers nothing) when blob does not fit.
//
// Hot path: no allocation, no wait.
func (h *HandOver) Offer(after int64, blob []byte) bool {
	if len(blob) > h.cap {
		return false
	}
	m := h.m
	seq := atomic.AddUint64(m.u64(h.off+hoBlobSeq), 1) // odd: writing
	if seq&1 == 0 {                                    // a writer died mid-write; make it odd
		seq = atomic.AddUint64(m.u64(h.off+hoBlobSeq), 1)
	}
	m.store(h.off+hoBlobLen, uint64(len(blob)))
	m.store(h.off+hoBlobAfter, uint64(after))
	base := h.off + hoBlob
	var word [8]byte
	for i := 0; i < len(blob); i += 8 {
		clear(word[:])
		copy(word[:], blob[i:])
		m.store(base+i, le.Uint64(word[:]))
	}
	m.store(h.off+hoBlobSeq, seq+1)
	m.store(h.off+hoBaton, baton(batonOffered, after))
	return true
}

// Keep is the releasing executive's claim on the cycle scheduled at sched:
// true when it must drive it (no offer was taken: the taking executive is
// not ready), false once the taking executive has taken over. An executive
// that has not offered yet keeps.
//
// Hot path: no allocation, no wait.
func (h *HandOver) Keep(sched int64) bool {
	p := h.m.u64(h.off + hoBaton)
	for {
		w := atomic.LoadUint64(p)
		switch w >> batonKindBits {
		case batonTaken:
			return false
		case batonOffered:
			if atomic.CompareAndSwapUint64(p, w, baton(batonKept, sched)) {
				return true
			}
		default:
			return true
		}
	}
}

// Take is the taking executive's claim on the cycle scheduled at sched. It
// succeeds when the releasing executive has offered its state after an
// earlier cycle and not kept this one: it returns the blob (copied into
// dst, which needs Cap bytes) and the scheduled start of the cycle the
// state follows; from then on the caller drives. Otherwise it returns ok
// false and the caller stays on standby and tries again next cycle.
//
// Hot path: no allocation, no wait.
func (h *HandOver) Take(sched int64, dst []byte) (after int64, blob []byte, ok bool) {
	p := h.m.u64(h.off + hoBaton)
	w := atomic.LoadUint64(p)
	if w>>batonKindBits != batonOffered {
		return 0, nil, false
	}
	after = int64(w & batonTimeMask)
	if after >= sched {
		return 0, nil, false
	}
	blob, ok = h.readBlob(dst, after)
	if !ok {
		return 0, nil, false
	}
	if !atomic.CompareAndSwapUint64(p, w, baton(batonTaken, sched)) {
		return 0, nil, false
	}
	return after, blob, true
}

// readBlob copies the blob under its seqlock; false when it is being
// written, does not follow the cycle after, or does not fit dst.
func (h *HandOver) readBlob(dst []byte, after int64) ([]byte, bool) {
	m := h.m
	s1 := m.load(h.off + hoBlobSeq)
	if s1&1 == 1 {
		return nil, false
	}
	n := m.load(h.off + hoBlobLen)
	if n > uint64(h.cap) || n > uint64(cap(dst)) || int64(m.load(h.off+hoBlobAfter)) != after {
		return nil, false
	}
	dst = dst[:n]
	base := h.off + hoBlob
	var word [8]byte
	for i := 0; i < int(n); i += 8 {
		le.PutUint64(word[:], m.load(base+i))
		copy(dst[i:], word[:])
	}
	if m.load(h.off+hoBlobSeq) != s1 {
		return nil, false
	}
	return dst, true
}

// SetCounters publishes the executive's hand-over counters.
func (h *HandOver) SetCounters(c wire.HandOverCounters) {
	o := h.off + hoCounters
	b := c.Blocks
	blocks := uint64(b.Carried)<<32 | uint64(b.Fresh&0xffff)<<16 | uint64(b.Dropped&0xffff)
	for i, v := range [...]uint64{uint64(c.Mode), c.Driven, c.Standby, c.Released, c.Retries, c.Missed, uint64(c.Switch), blocks} {
		h.m.store(o+8*i, v)
	}
}

// Counters reads the published hand-over counters.
func (h *HandOver) Counters() wire.HandOverCounters {
	o := h.off + hoCounters
	l := func(i int) uint64 { return h.m.load(o + 8*i) }
	b := l(7)
	return wire.HandOverCounters{Mode: wire.HandOverMode(l(0)), Driven: l(1), Standby: l(2), Released: l(3), Retries: l(4), Missed: l(5), Switch: int64(l(6)),
		Blocks: wire.BlockCounts{Carried: int(b >> 32), Fresh: int(b >> 16 & 0xffff), Dropped: int(b & 0xffff)}}
}
