package shm

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// ReaderOptions tune AttachReader. The zero value is the default.
type ReaderOptions struct {
	// PollMax is the longest pause between two looks at the result ring
	// while awaiting a result; default 1ms (the first looks are sooner).
	PollMax time.Duration
	// PID is recorded as the bridge's pid; zero: none.
	PID    int
	Clock  Clock
	Logger *slog.Logger
}

// errSubmitBusy is returned as is: a bridge retrying a full ring should not
// allocate on every try.
var errSubmitBusy error = &wrapped{msg: "shm: submit: command ring full (busy)", err: wire.ErrBusy}

type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// Reader is the bridge's side of a region: it reads the process image,
// heartbeat, events and histograms, and is the one producer of commands.
// Its methods are safe for concurrent use by several goroutines.
type Reader struct {
	m   mem
	l   *Layout
	o   ReaderOptions
	hb  int
	img int
	tk  int

	textOff []int // per tag: absolute offset of its string slot, -1 for numbers
	textCap []int
	strings []int       // IDs of the string tags
	slots   []imageSlot // the image's tag slots, in the mapping
	info    []tag.Info
	tasks   []Task

	imgMu   sync.Mutex // serialises snapshots (scratch buffer)
	scratch []byte

	evMu sync.Mutex
	evt  ring

	cmdMu   sync.Mutex // command producer, result consumer, results
	cmd     ring
	res     ring
	cmdSlot int
	results map[uint64]wire.Result
}

// AttachReader attaches the bridge to a formatted region. With a layout it
// refuses a region formatted for another one, naming the first difference
// (ErrConfigHash, ErrPartition, ErrSize, ErrLayout) — and ErrNotFormatted
// while the executive has not formatted it yet, which a caller retries until
// its deadline. With a nil layout it inspects any valid region (status
// tools), taking the layout from the header. Every offset and count in the
// header and directory is checked before use; a corrupted region is an
// ErrCorrupt error, never a crash.
func AttachReader(r *Region, l *Layout, o ReaderOptions) (*Reader, error) {
	if o.Clock == nil {
		o.Clock = SystemClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollMax <= 0 {
		o.PollMax = time.Millisecond
	}
	g, err := decodeHeader(r.mem)
	if err != nil {
		return nil, fmt.Errorf("shm: attach reader to %s: %w", r, err)
	}
	if l != nil {
		if err := compare(&l.g, &g); err != nil {
			return nil, fmt.Errorf("shm: attach reader to %s: %w", r, err)
		}
	} else {
		l = &Layout{g: g, hist: newHistGeom(g.HistLow, g.HistHigh, int(g.HistDigits))}
	}
	m := mem(r.mem[:g.Size])
	rd := &Reader{m: m, l: l, o: o, hb: int(g.Sec[secHeartbeat].Off), img: int(g.Sec[secImage].Off), tk: int(g.Sec[secTasks].Off),
		cmdSlot: g.cmdSlot(), results: map[uint64]wire.Result{}}
	if err := rd.readDirectory(); err != nil {
		return nil, fmt.Errorf("shm: attach reader to %s: %w", r, err)
	}
	rd.cmd = newRing(m, g.Sec[secCommands], g.CmdCap, rd.cmdSlot, true)
	rd.res = newRing(m, g.Sec[secResults], g.ResCap, resultSlotSize, false)
	rd.evt = newRing(m, g.Sec[secEvents], g.EvtCap, eventSlotSize, false)
	if o.PID != 0 {
		m.store32(rd.hb+hbBridgePID, uint32(o.PID))
	}
	return rd, nil
}

// readDirectory parses and bounds-checks the tag directory and task table.
func (r *Reader) readDirectory() error {
	g := &r.l.g
	n := int(g.Tags)
	r.info, r.textOff, r.textCap = make([]tag.Info, n), make([]int, n), make([]int, n)
	maxCap := 8
	dir, text := int(g.Sec[secDir].Off), int(g.Sec[secText].Off)
	for i := 0; i < n; i++ {
		e := r.m[dir+i*dirEntrySize:][:dirEntrySize]
		in := tag.Info{
			Name: cstr(e[dName : dName+nameMax]), Unit: cstr(e[dUnit : dUnit+unitMax]), Device: cstr(e[dDevice : dDevice+nameMax]),
			Writable: e[dWritable] == 1, Retain: e[dRetain] == 1,
			Length:   int(le.Uint32(e[dLength:])),
			Min:      math.Float64frombits(le.Uint64(e[dMin:])),
			Max:      math.Float64frombits(le.Uint64(e[dMax:])),
			Deadband: math.Float64frombits(le.Uint64(e[dDeadband:])),
		}
		if t := int(e[dType]); t >= 1 && t <= len(tag.DataTypes) {
			in.Type = tag.DataTypes[t-1]
		}
		switch e[dAccess] {
		case 1:
			in.Access = tag.Read
		case 2:
			in.Access = tag.Write
		case 3:
			in.Access = tag.ReadWrite
		}
		r.info[i], r.textOff[i] = in, -1
		if in.Type != tag.String {
			continue
		}
		off, cp := le.Uint32(e[dTextOff:]), le.Uint32(e[dTextCap:])
		if off%8 != 0 || cp%8 != 0 || cp == 0 || cp > maxText || uint64(off)+uint64(cp) > uint64(g.TextBytes) || in.Length > int(cp) {
			return mismatch(ErrCorrupt, fmt.Sprintf("string slot of tag %d (%q)", i, in.Name), fmt.Sprintf("within %d bytes", g.TextBytes),
				fmt.Sprintf("offset %d size %d length %d", off, cp, in.Length))
		}
		r.textOff[i], r.textCap[i] = text+int(off), int(cp)
		r.strings = append(r.strings, i)
		maxCap = max(maxCap, int(cp))
	}
	r.scratch = make([]byte, maxCap)
	if n > 0 { // the header check bounded the image section by the mapping
		r.slots = unsafe.Slice((*imageSlot)(unsafe.Pointer(&r.m[r.img+imageHead])), n)
	}
	r.tasks = make([]Task, g.Tasks)
	for i := range r.tasks {
		e := r.m[r.tk+i*taskEntrySize:][:lineSize]
		r.tasks[i] = Task{Name: cstr(e[tkName : tkName+taskNameMax]), Period: time.Duration(le.Uint64(e[tkPeriod:]))}
	}
	return nil
}

// Layout is the region's layout.
func (r *Reader) Layout() *Layout { return r.l }

// Tags is the tag directory, indexed by tag ID.
func (r *Reader) Tags() []tag.Info { return r.info }

// Tasks is the task table.
func (r *Reader) Tasks() []Task { return r.tasks }

// Image is a consistent copy of the process image. Its slices are reused by
// the next Snapshot into the same Image.
type Image struct {
	Seq     uint64 // image sequence (even), grows by 2 per publish
	Cycle   uint64 // the cycle that published it
	Samples []tag.Sample
	Text    []string // string tag values (empty for numbers)
	// Changed is, per tag, the image sequence at which it last changed.
	Changed []uint64
}

// ChangedSince appends to ids the tags that changed after image sequence
// since (0: all tags ever published) and returns it.
func (im *Image) ChangedSince(since uint64, ids []tag.ID) []tag.ID {
	for i, s := range im.Changed {
		if s > since {
			ids = append(ids, tag.ID(i))
		}
	}
	return ids
}

// Seq is the current image sequence: cheap to poll for news. It is odd while
// the executive is writing.
func (r *Reader) Seq() uint64 { return r.m.load(r.img + imSeq) }

// Snapshot copies a consistent image into dst, retrying while the executive
// writes; only a context deadline ends the retries (a writer that died
// mid-publish leaves the image locked until the next one attaches).
func (r *Reader) Snapshot(ctx context.Context, dst *Image) error {
	n := int(r.l.g.Tags)
	if cap(dst.Samples) < n {
		dst.Samples, dst.Changed = make([]tag.Sample, n), make([]uint64, n)
		dst.Text = make([]string, n)
	}
	dst.Samples, dst.Changed, dst.Text = dst.Samples[:n], dst.Changed[:n], dst.Text[:n]
	r.imgMu.Lock()
	defer r.imgMu.Unlock()
	for attempt := 1; ; attempt++ {
		if ok := r.trySnapshot(dst); ok {
			return nil
		}
		if attempt%16 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("shm: snapshot: no consistent image after %d attempts: %w: %w", attempt, ErrTimeout, err)
			}
			runtime.Gosched()
		}
	}
}

// trySnapshot is one seqlock read; every load from the image is atomic so
// the loads stay ordered between the two reads of the sequence.
//
// Hot path: one pass over the slots (32 bytes a tag), then the string tags.
func (r *Reader) trySnapshot(dst *Image) bool {
	m := r.m
	s1 := m.load(r.img + imSeq)
	if s1&1 == 1 {
		return false
	}
	cycle := m.load(r.img + imCycle)
	slots := r.slots[:len(dst.Samples)]
	changed := dst.Changed[:len(slots)]
	for i := range slots {
		d := &slots[i]
		meta := atomic.LoadUint64(&d.meta)
		dst.Samples[i] = tag.Sample{Value: math.Float64frombits(atomic.LoadUint64(&d.value)), Time: int64(atomic.LoadUint64(&d.time)),
			Quality: tag.Quality(meta), Reason: tag.Reason(meta >> 8)}
		changed[i] = atomic.LoadUint64(&d.stamp)
	}
	for _, i := range r.strings {
		ln := min(int(atomic.LoadUint64(&slots[i].meta)>>16)&0xffff, r.textCap[i])
		m.loadBytes(r.scratch, r.textOff[i], ln)
		if dst.Text[i] != string(r.scratch[:ln]) { // no allocation when unchanged
			dst.Text[i] = string(r.scratch[:ln])
		}
	}
	if m.load(r.img+imSeq) != s1 {
		return false
	}
	dst.Seq, dst.Cycle = s1, cycle
	return true
}

// Submit queues a command for the executive and returns its ID. A full ring
// is ErrBusy (counted in Heartbeat.CommandsBusy); the executive is never
// waited for. Text longer than the layout's CommandTextMax is ErrInvalid.
func (r *Reader) Submit(c wire.Command) (uint64, error) {
	var id [1]uint64
	err := r.submit([]wire.Command{c}, id[:])
	return id[0], err
}

// SubmitAll queues cs as one unit and returns their IDs: the executive
// takes all of them in the same cycle, checks every one and applies all or
// none (a refused one is answered with its status, the others with
// wire.Withdrawn). The unit is published with one store of the ring's
// index, so the executive never sees part of it. Only tag writes form a
// unit; a unit larger than the command ring (Layout.CommandCapacity) is
// ErrInvalid, one the ring has no room for now ErrBusy.
func (r *Reader) SubmitAll(cs []wire.Command) ([]uint64, error) {
	if len(cs) > 1 {
		for i := range cs {
			if cs[i].Kind != wire.WriteTag {
				return nil, fmt.Errorf("shm: submit: %w: command %d of a unit is a %s; a unit holds tag writes only", ErrInvalid, i, cs[i].Kind)
			}
		}
	}
	ids := make([]uint64, len(cs))
	if err := r.submit(cs, ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// submit writes cs into consecutive slots and publishes them at once,
// their IDs into ids.
func (r *Reader) submit(cs []wire.Command, ids []uint64) error {
	if len(cs) == 0 {
		return fmt.Errorf("shm: submit: %w: no command", ErrInvalid)
	}
	if len(cs) > r.UnitMax() {
		return fmt.Errorf("shm: submit: %w: a unit of %d commands; at most %d go as one (the command ring's capacity, at most %d)", ErrInvalid, len(cs), r.UnitMax(), maxUnit)
	}
	for i := range cs {
		if n := len(cmdText(&cs[i])); n > int(r.l.g.CmdText) {
			return fmt.Errorf("shm: submit: %w: text of %d bytes; commands carry at most %d", ErrInvalid, n, r.l.g.CmdText)
		}
	}
	r.cmdMu.Lock()
	defer r.cmdMu.Unlock()
	if !r.cmd.room(uint64(len(cs))) {
		r.m.add(r.hb+hbCmdBusy, 1)
		return errSubmitBusy
	}
	for i := range cs {
		ids[i] = r.cmd.local + uint64(i) + 1
		r.put(r.m[r.cmd.at(r.cmd.local+uint64(i)):][:r.cmdSlot], ids[i], &cs[i], i < len(cs)-1)
	}
	r.cmd.commitN(uint64(len(cs)))
	return nil
}

// UnitMax is the most commands SubmitAll takes as one unit.
func (r *Reader) UnitMax() int { return unitCap(&r.l.g) }

// cmdText is the text a command carries: a parameter's name or a string
// tag's value.
func cmdText(c *wire.Command) []byte {
	if c.Kind == wire.SetParam {
		return c.Param
	}
	return c.Value.Text
}

// put writes command c with id into slot s; more marks that the next slot
// belongs to the same unit.
func (r *Reader) put(s []byte, id uint64, c *wire.Command, more bool) {
	text := cmdText(c)
	le.PutUint64(s[csID:], id)
	le.PutUint64(s[csValue:], math.Float64bits(c.Value.Num))
	le.PutUint32(s[csTag:], uint32(c.Tag))
	s[csKind] = byte(c.Kind)
	s[csFlags] = 0
	if c.Value.IsText {
		s[csFlags] |= cmdFlagText
	}
	if more {
		s[csFlags] |= cmdFlagMore
	}
	le.PutUint16(s[csLen:], uint16(len(text)))
	// The slot's first cache line is written whole; what follows it (the
	// origin's tail, the text) only where it differs from what the slot
	// holds from the ring's last lap, so that a command with a short
	// origin and no text takes one line from the executive's core, not
	// two (about 8% more commands/s between distant cores).
	copy(s[csOrigin:lineSize], c.Origin[:lineSize-csOrigin])
	update(s[lineSize:csOrigin+wire.OriginMax], c.Origin[lineSize-csOrigin:])
	update(s[csText:csText+len(text)], text)
}

// Do submits c and awaits its result.
func (r *Reader) Do(ctx context.Context, c wire.Command) (wire.Result, error) {
	id, err := r.Submit(c)
	if err != nil {
		return wire.Result{}, err
	}
	return r.Await(ctx, id)
}

// Await waits for the result of command id until ctx ends (ErrTimeout).
// Results for other commands that arrive meanwhile are kept for their
// Await.
func (r *Reader) Await(ctx context.Context, id uint64) (wire.Result, error) {
	pause := 10 * time.Microsecond
	for {
		r.cmdMu.Lock()
		r.collect()
		res, ok := r.results[id]
		delete(r.results, id)
		r.cmdMu.Unlock()
		if ok {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return wire.Result{}, fmt.Errorf("shm: command %d: %w: %w", id, ErrTimeout, ctx.Err())
		case <-r.o.Clock.After(pause):
		}
		pause = min(2*pause, r.o.PollMax)
	}
}

// collect moves results from the ring into the results map, forgetting
// unclaimed results far older than the newest (their Await gave up).
func (r *Reader) collect() {
	var newest uint64
	for {
		res, ok := r.nextResult()
		if !ok {
			break
		}
		r.results[res.ID] = res
		newest = max(newest, res.ID)
	}
	r.res.flush()
	if limit := 4 * int(r.l.g.ResCap); len(r.results) > limit {
		for id := range r.results {
			if id+uint64(limit) < newest {
				delete(r.results, id)
			}
		}
	}
}

func (r *Reader) nextResult() (wire.Result, bool) {
	off, ok, corrupt := r.res.peek()
	if corrupt {
		r.o.Logger.Warn("shm: result ring indices were impossible; resynchronised")
	}
	if !ok {
		return wire.Result{}, false
	}
	s := r.m[off:][:resultSlotSize]
	res := wire.Result{ID: le.Uint64(s[rsID:]), Cycle: le.Uint64(s[rsCycle:]),
		Old: math.Float64frombits(le.Uint64(s[rsOld:])), Status: wire.Status(s[rsStatus])}
	r.res.release()
	return res, true
}

// Results takes up to len(dst) results straight from the ring, for callers
// that track results themselves instead of using Await (do not mix the
// two). It never waits.
func (r *Reader) Results(dst []wire.Result) int {
	r.cmdMu.Lock()
	defer r.cmdMu.Unlock()
	n := 0
	for n < len(dst) {
		res, ok := r.nextResult()
		if !ok {
			break
		}
		dst[n] = res
		n++
	}
	r.res.flush()
	return n
}

// Events takes up to len(dst) events from the event ring, oldest first, and
// returns how many. It never waits. Events dropped because the ring was full
// are counted in Heartbeat.EventsDropped.
func (r *Reader) Events(dst []wire.Event) int {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	n := 0
	for n < len(dst) {
		off, ok, corrupt := r.evt.peek()
		if corrupt {
			r.o.Logger.Warn("shm: event ring indices were impossible; resynchronised")
		}
		if !ok {
			break
		}
		s := r.m[off:][:eventSlotSize]
		ln := min(int(s[esLen]), wire.EventTextMax)
		dst[n] = wire.Event{Cycle: le.Uint64(s[esCycle:]), Time: int64(le.Uint64(s[esTime:])),
			Value: math.Float64frombits(le.Uint64(s[esValue:])), Tag: tag.ID(int32(le.Uint32(s[esTag:]))),
			Task: int(int16(le.Uint16(s[esTask:]))), Kind: wire.EventKind(s[esKind]),
			State: wire.State(s[esState]), Code: wire.FaultCode(le.Uint16(s[esCode:])), Text: string(s[esText : esText+ln])}
		r.evt.release()
		n++
	}
	r.evt.flush()
	return n
}

// Heartbeat is the executive's published liveness and health.
type Heartbeat struct {
	BootID   [16]byte
	PID      uint32 // writer pid (in the writer's kernel); 0 when detached
	Claims   uint32 // how many writers attached since the region was formatted
	Cycle    uint64
	MonoNs   int64 // executive's monotonic clock at the cycle's start
	State    wire.State
	Fault    wire.FaultCode
	RTMode   wire.RTMode
	RTReason string
	// Overruns is the overrun count per task.
	Overruns []uint64
	// EventsDropped counts events lost to a full event ring.
	EventsDropped uint64
	// CommandsBusy counts Submits refused because the command ring was full.
	CommandsBusy uint64
	// CommandsDiscarded counts commands dropped when a new writer attached.
	CommandsDiscarded uint64
	// Corrupt counts impossible ring indices the executive repaired.
	Corrupt uint64
}

// Heartbeat reads the heartbeat. A supervisor calls it periodically and
// declares the partition dead when Cycle stops moving.
func (r *Reader) Heartbeat() Heartbeat {
	m, hb := r.m, r.hb
	h := Heartbeat{PID: m.load32(hPID), Claims: m.load32(hClaims), Cycle: m.load(hb + hbCycle), MonoNs: int64(m.load(hb + hbMono)),
		State: wire.State(m.load32(hb + hbState)), Fault: wire.FaultCode(m.load32(hb + hbFault)),
		EventsDropped: m.load(hb + hbEventsDropped), CommandsBusy: m.load(hb + hbCmdBusy),
		CommandsDiscarded: m.load(hb + hbCmdDiscarded), Corrupt: m.load(hb + hbCorrupt)}
	le.PutUint64(h.BootID[:], m.load(hBootID))
	le.PutUint64(h.BootID[8:], m.load(hBootID+8))
	var reason [reasonMax]byte
	for i := 0; i < 100; i++ { // the writer changes it rarely; give up on a torn read after 100 tries
		s := m.load(hb + hbRTSeq)
		mode, ln := m.load32(hb+hbRTMode), min(int(m.load32(hb+hbRTLen)), reasonMax)
		m.loadBytes(reason[:], hb+hbRTReason, reasonMax)
		if s&1 == 0 && m.load(hb+hbRTSeq) == s {
			h.RTMode, h.RTReason = wire.RTMode(mode), string(reason[:ln])
			break
		}
	}
	h.Overruns = make([]uint64, r.l.g.Tasks)
	for i := range h.Overruns {
		h.Overruns[i] = m.load(r.tk + i*taskEntrySize + tkOverruns)
	}
	return h
}

// Histograms returns task's wake-up latency and execution time histograms
// (ns) as HdrHistograms.
func (r *Reader) Histograms(task int) (wake, exec *hdrhistogram.Histogram, err error) {
	g := &r.l.g
	if task < 0 || task >= int(g.Tasks) {
		return nil, nil, fmt.Errorf("shm: histograms: %w: task %d of %d", ErrInvalid, task, g.Tasks)
	}
	read := func(which int) (*hdrhistogram.Histogram, error) {
		off := int(g.Sec[secHist].Off) + (2*task+which)*g.histLen()
		counts := make([]int64, g.HistCounts)
		for i := range counts {
			counts[i] = int64(r.m.load(off + 8*i))
		}
		s := &hdrhistogram.Snapshot{LowestTrackableValue: g.HistLow, HighestTrackableValue: g.HistHigh,
			SignificantFigures: int64(g.HistDigits), Counts: counts}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("shm: histogram %d of task %d: %w: %w", which, task, ErrCorrupt, err)
		}
		return hdrhistogram.Import(s), nil
	}
	if wake, err = read(0); err == nil {
		exec, err = read(1)
	}
	if err != nil {
		return nil, nil, err
	}
	return wake, exec, nil
}

// update copies src into dst unless dst holds it already: a line of the
// region that is only read stays shared with the other side's core.
func update(dst, src []byte) {
	if string(dst) != string(src) {
		copy(dst, src)
	}
}
