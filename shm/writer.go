package shm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Clock is the time source of the waits in this package.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SystemClock is the real clock.
func SystemClock() Clock { return systemClock{} }

// WriterOptions tune AttachWriter. The zero value is the default.
type WriterOptions struct {
	// Force takes the region over even when another writer looks alive or
	// the region was formatted for another config (it is reformatted).
	Force bool
	// StaleAfter is how long a previous writer's heartbeat must stand still
	// before the region is taken over; default 200ms.
	StaleAfter time.Duration
	// BootID identifies this executive start; zero: random.
	BootID [16]byte
	// PID is recorded in the header; zero: os.Getpid().
	PID    int
	Clock  Clock
	Logger *slog.Logger
}

// Writer is the executive's side of a region. Its per-cycle methods never
// block, never allocate and never take a lock; one goroutine (the cycle
// loop) calls them, except the histogram/overrun recorders, which any task
// may call for its own task index.
type Writer struct {
	m      mem
	l      *Layout
	log    *slog.Logger
	bootID [16]byte

	hb, tasks, img, text, hist int
	histLen                    int
	textOff                    []int32 // per tag: absolute offset of its string slot, -1 for numbers
	textCap                    []uint16
	strings                    []int32     // IDs of the string tags
	slots                      []imageSlot // the image's tag slots, in the mapping

	cmd, res, evt ring
	cmdSlot       int
	cmdBuf        []byte
	owed          int // commands taken and not answered yet
	// unit and unitText hold the unit PollUnit took, the text of command
	// i at unitText[i*CmdText:].
	unit     []wire.Command
	unitText []byte
}

// maxUnit is the most commands of one unit (Reader.SubmitAll): the command
// ring's capacity, at most 256 (the writer keeps a unit's text).
const maxUnit = 256

func unitCap(g *geom) int { return min(int(g.CmdCap), maxUnit) }

// Format writes an empty region for l into r: zeroes it, writes the tag
// directory and task table, then the header, magic last. The host side
// calls it when it creates a region; AttachWriter calls it on a blank one.
func Format(r *Region, l *Layout) error {
	if int64(r.Len()) < l.Size() {
		return fmt.Errorf("shm: format %s: %w", r, mismatch(ErrSize, "mapping size", l.Size(), r.Len()))
	}
	m := mem(r.mem[:l.g.Size])
	m.store(hMagic, 0)
	clear(m[8:])
	writeDirectory(m, l)
	g := &l.g
	var h [headerSize]byte
	encodeHeader(h[:], g)
	copy(m[8:hBootID], h[8:hBootID])
	m.store(hMagic, le.Uint64(h[:8]))
	return nil
}

// Seed formats r for l when it is blank (or forced) and writes samples and
// text as its process image, then detaches: the executive that attaches
// next finds them there (rtkernel/app takes the retain tags' values from
// it). The host side seeds a fresh region with the retained values it
// kept, the same way for a child process, a guest or a second kernel.
func Seed(ctx context.Context, r *Region, l *Layout, samples []tag.Sample, text []string) error {
	w, err := AttachWriter(ctx, r, l, WriterOptions{Force: true})
	if err != nil {
		return err
	}
	w.PublishAll(0, samples, text)
	return w.Close()
}

// writeDirectory writes the tag directory and the static lines of the task
// table (names, periods), leaving the task counters alone.
func writeDirectory(m mem, l *Layout) {
	g := &l.g
	clear(m[g.Sec[secDir].Off : g.Sec[secDir].Off+g.Sec[secDir].Len])
	for i, in := range l.tags {
		e := m[int(g.Sec[secDir].Off)+i*dirEntrySize:][:dirEntrySize]
		copy(e[dName:dName+nameMax], in.Name)
		copy(e[dUnit:dUnit+unitMax], in.Unit)
		copy(e[dDevice:dDevice+nameMax], in.Device)
		e[dType] = typeCode(in.Type)
		e[dAccess] = accessCode(in.Access)
		e[dWritable], e[dRetain] = boolByte(in.Writable), boolByte(in.Retain)
		le.PutUint32(e[dLength:], uint32(in.Length))
		le.PutUint64(e[dMin:], math.Float64bits(in.Min))
		le.PutUint64(e[dMax:], math.Float64bits(in.Max))
		le.PutUint64(e[dDeadband:], math.Float64bits(in.Deadband))
		if in.Type == tag.String {
			le.PutUint32(e[dTextOff:], l.text[i])
			le.PutUint32(e[dTextCap:], textCap(in.Length))
		}
	}
	for i, t := range l.tasks {
		e := m[int(g.Sec[secTasks].Off)+i*taskEntrySize:][:lineSize]
		clear(e)
		copy(e[tkName:tkName+taskNameMax], t.Name)
		le.PutUint64(e[tkPeriod:], uint64(t.Period))
	}
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func typeCode(t tag.DataType) byte {
	for i, d := range tag.DataTypes {
		if d == t {
			return byte(i + 1)
		}
	}
	return 0
}

func accessCode(a tag.Access) byte {
	switch a {
	case tag.Read:
		return 1
	case tag.Write:
		return 2
	case tag.ReadWrite:
		return 3
	}
	return 0
}

// AttachWriter makes this process the region's one writer.
//
// A blank region is formatted. A region formatted for another layout or
// config is refused (ErrConfigHash, ErrLayout, ...) unless o.Force, which
// reformats it. If the header names a previous writer that did not detach,
// AttachWriter watches its heartbeat for o.StaleAfter and refuses with
// ErrWriterLive if it moves (unless o.Force). On success it records a new
// boot id and pid, sets the state to booting, discards commands queued for
// the previous writer, resets the histograms and overrun counts, and keeps
// unread events and results.
func AttachWriter(ctx context.Context, r *Region, l *Layout, o WriterOptions) (*Writer, error) {
	if o.Clock == nil {
		o.Clock = SystemClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 200 * time.Millisecond
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if int64(r.Len()) < l.Size() {
		return nil, fmt.Errorf("shm: attach %s: %w", r, mismatch(ErrSize, "mapping size", l.Size(), r.Len()))
	}
	m := mem(r.mem[:l.g.Size])
	g, err := decodeHeader(r.mem)
	if err == nil {
		err = compare(&l.g, &g)
	}
	switch {
	case errors.Is(err, ErrNotFormatted):
		o.Logger.Info("shm: formatting blank region", "region", r.String(), "size", l.Size())
		if err := Format(r, l); err != nil {
			return nil, err
		}
	case err != nil && !o.Force:
		return nil, fmt.Errorf("shm: attach writer to %s: %w", r, err)
	case err != nil:
		o.Logger.Warn("shm: reformatting region (forced)", "region", r.String(), "reason", err)
		if err := Format(r, l); err != nil {
			return nil, err
		}
	default:
		if err := waitStale(ctx, m, &l.g, o); err != nil {
			return nil, fmt.Errorf("shm: attach writer to %s: %w", r, err)
		}
		// Rewrite the directory: it is ours, and a stray write may have hit it.
		writeDirectory(m, l)
	}
	w := newWriter(m, l, o.Logger)
	w.bootID = o.BootID
	if w.bootID == ([16]byte{}) {
		if _, err := rand.Read(w.bootID[:]); err != nil {
			return nil, fmt.Errorf("shm: boot id: %w", err)
		}
	}
	w.claim(uint32(o.PID))
	return w, nil
}

// CheckNoWriter returns an error wrapping ErrWriterLive when an executive
// still writes r — its pid is recorded and its heartbeat or image moved
// within staleAfter — and nil for a blank, foreign or abandoned region.
// The host side calls it before it formats a region it is about to hand
// to a new executive, so a control program left running (by a supervisor
// that died before recording it) never loses its region under it.
func CheckNoWriter(ctx context.Context, r *Region, staleAfter time.Duration) error {
	g, err := decodeHeader(r.mem)
	if err != nil {
		return nil
	}
	err = waitStale(ctx, mem(r.mem[:g.Size]), &g, WriterOptions{StaleAfter: staleAfter, Clock: SystemClock(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("shm: %s: %w", r, err)
	}
	return nil
}

// waitStale returns nil when no other writer owns the region: it detached
// (pid 0) or its heartbeat and image stood still for StaleAfter.
func waitStale(ctx context.Context, m mem, g *geom, o WriterOptions) error {
	pid := m.load32(hPID)
	if pid == 0 || o.Force {
		return nil
	}
	hb, img := int(g.Sec[secHeartbeat].Off), int(g.Sec[secImage].Off)
	cycle, seq := m.load(hb+hbCycle), m.load(img+imSeq)
	deadline := o.Clock.After(o.StaleAfter)
	tick := o.StaleAfter / 20
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the previous writer (pid %d) to go stale: %w", pid, ctx.Err())
		case <-deadline:
			o.Logger.Info("shm: taking over from a stale writer", "pid", pid, "cycle", cycle)
			return nil
		case <-o.Clock.After(tick):
		}
		if c, s := m.load(hb+hbCycle), m.load(img+imSeq); c != cycle || s != seq {
			var boot [16]byte
			le.PutUint64(boot[:], m.load(hBootID))
			le.PutUint64(boot[8:], m.load(hBootID+8))
			return mismatch(ErrWriterLive, "writer", "none alive", fmt.Sprintf("pid %d boot %x (cycle moved %d -> %d)", pid, boot, cycle, c))
		}
	}
}

func newWriter(m mem, l *Layout, log *slog.Logger) *Writer {
	g := &l.g
	w := &Writer{m: m, l: l, log: log,
		hb: int(g.Sec[secHeartbeat].Off), tasks: int(g.Sec[secTasks].Off), img: int(g.Sec[secImage].Off),
		text: int(g.Sec[secText].Off), hist: int(g.Sec[secHist].Off), histLen: g.histLen(),
		textOff: make([]int32, g.Tags), textCap: make([]uint16, g.Tags), cmdSlot: g.cmdSlot()}
	for i, in := range l.tags {
		w.textOff[i] = -1
		if in.Type == tag.String {
			w.textOff[i] = int32(w.text + int(l.text[i]))
			w.textCap[i] = uint16(textCap(in.Length))
		}
	}
	if g.Tags > 0 {
		w.slots = unsafe.Slice((*imageSlot)(unsafe.Pointer(&m[w.img+imageHead])), g.Tags)
	}
	for i, off := range w.textOff {
		if off >= 0 {
			w.strings = append(w.strings, int32(i))
		}
	}
	w.cmd = newRing(m, g.Sec[secCommands], g.CmdCap, w.cmdSlot, false)
	w.res = newRing(m, g.Sec[secResults], g.ResCap, resultSlotSize, true)
	w.evt = newRing(m, g.Sec[secEvents], g.EvtCap, eventSlotSize, true)
	w.cmdBuf = make([]byte, g.CmdText)
	w.unit = make([]wire.Command, unitCap(g))
	w.unitText = make([]byte, unitCap(g)*int(g.CmdText))
	return w
}

func (w *Writer) claim(pid uint32) {
	m := w.m
	m.store32(w.hb+hbState, uint32(wire.Booting))
	m.store32(w.hb+hbFault, 0)
	if n := w.cmd.skipAll(); n > 0 && n <= w.cmd.cap {
		m.add(w.hb+hbCmdDiscarded, n)
		w.log.Warn("shm: discarded commands queued for the previous executive", "count", n)
	}
	if s := m.load(w.img + imSeq); s&1 == 1 {
		m.store(w.img+imSeq, s+1) // the previous writer died mid-publish
	}
	clear(m[w.hist : w.hist+int(w.l.g.Sec[secHist].Len)])
	ho := int(w.l.g.Sec[secHandOver].Off)
	clear(m[ho : ho+handOverHead]) // no baton, grid or counters of the previous writer
	for i := 0; i < int(w.l.g.Tasks); i++ {
		clear(m[w.tasks+i*taskEntrySize+lineSize : w.tasks+(i+1)*taskEntrySize])
	}
	m.store(hBootID, le.Uint64(w.bootID[:]))
	m.store(hBootID+8, le.Uint64(w.bootID[8:]))
	m.store32(hClaims, m.load32(hClaims)+1)
	m.store32(hPID, pid)
}

// imageSlot is one tag's slot in the process image (little-endian host).
type imageSlot struct {
	value, time, stamp, meta uint64 // isValue, isTime, isStamp, isMeta
}

// BootID is this executive start's id, as recorded in the header.
func (w *Writer) BootID() [16]byte { return w.bootID }

// Layout is the writer's layout.
func (w *Writer) Layout() *Layout { return w.l }

// Close detaches cleanly: the pid is cleared so the next writer attaches
// without waiting, and the state is set to stopping unless it is faulted or
// safe. It does not unmap the region.
func (w *Writer) Close() error {
	if s := wire.State(w.m.load32(w.hb + hbState)); s != wire.Faulted && s != wire.Safe {
		w.m.store32(w.hb+hbState, uint32(wire.Stopping))
	}
	w.m.store32(hPID, 0)
	return nil
}

// Publish writes the tags that changed since the last publish into the
// process image, under the image seqlock, stamping each with the new image
// sequence, and returns that sequence. samples and text are indexed by tag
// ID (text only for string tags; it may be shorter or nil). Tags beyond the
// layout are ignored; strings longer than their slot are cut.
//
// Hot path: no allocation, no lock, no syscall.
func (w *Writer) Publish(cycle uint64, samples []tag.Sample, text []string) uint64 {
	return w.publish(cycle, samples, text, false)
}

// PublishAll is Publish writing every tag, changed or not.
//
// Hot path: no allocation, no lock, no syscall.
func (w *Writer) PublishAll(cycle uint64, samples []tag.Sample, text []string) uint64 {
	return w.publish(cycle, samples, text, true)
}

func (w *Writer) publish(cycle uint64, samples []tag.Sample, text []string, all bool) uint64 {
	m := w.m
	// Seqlock write side: the add (acquire-release) makes the sequence odd
	// before any data store; the final store (release) orders them before
	// the even sequence.
	next := atomic.AddUint64(m.u64(w.img+imSeq), 1) + 1
	le.PutUint64(m[w.img+imCycle:], cycle)
	slots := w.slots[:min(len(samples), len(w.slots))]
	samples = samples[:len(slots)]
	for i := range slots {
		s, d := &samples[i], &slots[i]
		v, t := math.Float64bits(s.Value), uint64(s.Time)
		meta := uint64(s.Quality) | uint64(s.Reason)<<8
		if all || (d.value^v)|(d.time^t)|((d.meta^meta)&0xffff) != 0 {
			d.value, d.time, d.stamp, d.meta = v, t, next, meta|d.meta&^0xffff
		}
	}
	for _, i := range w.strings {
		if int(i) >= len(slots) {
			break
		}
		var str string
		if int(i) < len(text) {
			str = text[i]
		}
		str = str[:min(len(str), int(w.textCap[i]))]
		dst := m[int(w.textOff[i]):][:w.textCap[i]]
		d := &slots[i]
		if all || int(d.meta>>16) != len(str) || string(dst[:len(str)]) != str {
			copy(dst, str)
			clear(dst[len(str):])
			d.stamp, d.meta = next, d.meta&0xffff|uint64(len(str))<<16
		}
	}
	atomic.StoreUint64(m.u64(w.img+imSeq), next)
	return next
}

// Beat publishes the heartbeat: the cycle counter and the monotonic time
// (ns) the executive reports with it (rtkernel/app: the end of the cycle,
// read just before, which a hand-over between kernels relies on).
//
// Hot path: no allocation.
func (w *Writer) Beat(cycle uint64, monoNs int64) {
	w.m.store(w.hb+hbMono, uint64(monoNs))
	w.m.store(w.hb+hbCycle, cycle)
}

// SetState publishes the executive state and fault code.
//
// Hot path: no allocation.
func (w *Writer) SetState(s wire.State, code wire.FaultCode) {
	w.m.store32(w.hb+hbFault, uint32(code))
	w.m.store32(w.hb+hbState, uint32(s))
}

// SetRTMode publishes the real-time mode and why it is degraded (cut to 112
// bytes).
//
// No allocation.
func (w *Writer) SetRTMode(mode wire.RTMode, reason string) {
	m, hb := w.m, w.hb
	atomic.AddUint64(m.u64(hb+hbRTSeq), 1)
	reason = reason[:min(len(reason), reasonMax)]
	le.PutUint32(m[hb+hbRTMode:], uint32(mode))
	le.PutUint32(m[hb+hbRTLen:], uint32(len(reason)))
	dst := m[hb+hbRTReason:][:reasonMax]
	copy(dst, reason)
	clear(dst[len(reason):])
	m.add(hb+hbRTSeq, 1)
}

// PushEvent queues e for the bridge. When the event ring is full the event
// is dropped and counted (Heartbeat.EventsDropped); it returns false.
//
// Hot path: no allocation, never waits.
func (w *Writer) PushEvent(e wire.Event) bool {
	off, ok := w.evt.reserve()
	if !ok {
		w.m.add(w.hb+hbEventsDropped, 1)
		return false
	}
	s := w.m[off:][:eventSlotSize]
	le.PutUint64(s[esCycle:], e.Cycle)
	le.PutUint64(s[esTime:], uint64(e.Time))
	le.PutUint64(s[esValue:], math.Float64bits(e.Value))
	le.PutUint32(s[esTag:], uint32(e.Tag))
	le.PutUint16(s[esTask:], uint16(e.Task))
	s[esKind] = byte(e.Kind)
	s[esState] = byte(e.State)
	le.PutUint16(s[esCode:], uint16(e.Code))
	n := copy(s[esText:esText+wire.EventTextMax], e.Text)
	s[esLen] = byte(n)
	w.evt.commit()
	return true
}

// PollCommand takes the next command into c and reports whether there was
// one. Every command taken must be answered with Reply before the next
// PollCommand. It takes nothing while the result ring is full, so a slow
// bridge backs commands up in the command ring (the bridge then sees
// ErrBusy) instead of losing results. c.Text points into the writer's
// buffer until the next call. It takes a unit's commands one by one, as
// single commands: an executive that applies units whole uses PollUnit.
//
// Hot path: no allocation, never waits.
func (w *Writer) PollCommand(c *wire.Command) bool {
	if w.owed > 0 || !w.res.free() {
		return false
	}
	off, ok, corrupt := w.cmd.peek()
	if corrupt {
		w.m.add(w.hb+hbCorrupt, 1)
	}
	if !ok {
		return false
	}
	w.take(off, c, w.cmdBuf)
	w.cmd.release()
	w.owed = 1
	return true
}

// PollUnit takes the next unit of commands (Reader.SubmitAll; a command
// submitted alone is a unit of one) and returns it, or nil when there is
// none or the result ring has no room for all its answers. Every command
// taken must be answered, in order, with Reply before the next poll; the
// commands' text stays valid until then. A unit whose last published slot
// still says that more follow (a producer that broke the protocol) ends
// there and is counted corrupt.
//
// Hot path: no allocation, never waits.
func (w *Writer) PollUnit() []wire.Command {
	if w.owed > 0 {
		return nil
	}
	_, ok, corrupt := w.cmd.peek()
	if corrupt {
		w.m.add(w.hb+hbCorrupt, 1)
	}
	if !ok {
		return nil
	}
	avail := min(w.cmd.unread(), uint64(len(w.unit)))
	n := uint64(0)
	for n < avail {
		more := w.m[w.cmd.at(w.cmd.local+n)+csFlags]&cmdFlagMore != 0
		n++
		if !more {
			break
		}
		if n == avail {
			w.m.add(w.hb+hbCorrupt, 1)
		}
	}
	if n == 0 || !w.res.room(n) {
		return nil
	}
	text := int(w.l.g.CmdText)
	for i := range n {
		w.take(w.cmd.at(w.cmd.local), &w.unit[i], w.unitText[int(i)*text:][:text])
		w.cmd.release()
	}
	w.owed = int(n)
	return w.unit[:n]
}

// take copies the command in the slot at off into c, its text into buf.
func (w *Writer) take(off int, c *wire.Command, buf []byte) {
	s := w.m[off:][:w.cmdSlot]
	c.ID = le.Uint64(s[csID:])
	c.Kind = wire.CommandKind(s[csKind])
	c.Tag = tag.ID(int32(le.Uint32(s[csTag:])))
	copy(c.Origin[:], s[csOrigin:csOrigin+wire.OriginMax])
	n := min(int(le.Uint16(s[csLen:])), len(buf))
	copy(buf, s[csText:csText+n])
	c.Value, c.Param = wire.Value{Num: math.Float64frombits(le.Uint64(s[csValue:]))}, nil
	switch {
	case c.Kind == wire.SetParam:
		c.Param = buf[:n]
	case s[csFlags]&cmdFlagText != 0:
		c.Value.Text, c.Value.IsText = buf[:n], true
	}
}

// Reply answers the oldest command taken by PollCommand or PollUnit and
// not answered yet. It reports false when no answer was owed.
//
// Hot path: no allocation, never waits.
func (w *Writer) Reply(r wire.Result) bool {
	if w.owed == 0 {
		return false
	}
	off, ok := w.res.reserve()
	if !ok { // cannot happen: the poll checked for room
		w.m.add(w.hb+hbCorrupt, 1)
		return false
	}
	s := w.m[off:][:resultSlotSize]
	le.PutUint64(s[rsID:], r.ID)
	le.PutUint64(s[rsCycle:], r.Cycle)
	le.PutUint64(s[rsOld:], math.Float64bits(r.Old))
	s[rsStatus] = byte(r.Status)
	w.res.commit()
	w.owed--
	return true
}

// RecordWakeup adds one wake-up latency (ns) to the task's histogram.
// Values outside 0..highest are clamped. Out-of-range tasks are ignored.
//
// Hot path: one atomic add, no allocation.
func (w *Writer) RecordWakeup(task int, ns int64) { w.record(task, 0, tkLastWake, ns) }

// RecordExec adds one execution time (ns) to the task's histogram.
//
// Hot path: one atomic add, no allocation.
func (w *Writer) RecordExec(task int, ns int64) { w.record(task, 1, tkLastExec, ns) }

func (w *Writer) record(task, which, last int, ns int64) {
	if uint(task) >= uint(w.l.g.Tasks) {
		return
	}
	i := w.l.hist.index(ns)
	w.m.add(w.hist+(2*task+which)*w.histLen+8*i, 1)
	le.PutUint64(w.m[w.tasks+task*taskEntrySize+last:], uint64(ns))
}

// Overrun counts one overrun of the task.
//
// Hot path: one atomic add, no allocation.
func (w *Writer) Overrun(task int) {
	if uint(task) < uint(w.l.g.Tasks) {
		w.m.add(w.tasks+task*taskEntrySize+tkOverruns, 1)
	}
}
