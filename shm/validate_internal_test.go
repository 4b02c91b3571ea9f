package shm

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

func testParams() Params {
	p := Params{Partition: "line1", Tasks: []Task{{Name: "fast", Period: time.Millisecond}}}
	p.Tags = []tag.Info{
		{Name: "level", Type: tag.Float64, Writable: true, Min: 0, Max: 10},
		{Name: "label", Type: tag.String, Writable: true, Length: 20, Min: math.Inf(-1), Max: math.Inf(1)},
	}
	p.ConfigHash[0] = 1
	return p
}

func heapRegion(t testing.TB, size int64) *Region {
	t.Helper()
	words := make([]uint64, size/8)
	b := unsafeBytes(words)
	r, err := NewRegion(b, "heap")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func formatted(t testing.TB, p Params) (*Layout, *Region) {
	t.Helper()
	l, err := NewLayout(p)
	if err != nil {
		t.Fatal(err)
	}
	r := heapRegion(t, l.Size())
	if err := Format(r, l); err != nil {
		t.Fatal(err)
	}
	return l, r
}

func TestLayoutDeterministic(t *testing.T) {
	a, err := NewLayout(testParams())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewLayout(testParams())
	if a.g != b.g {
		t.Fatal("same params, different layouts")
	}
	for i := 1; i < numSections; i++ {
		prev, s := a.g.Sec[i-1], a.g.Sec[i]
		if s.Off%lineSize != 0 || s.Off < prev.Off+prev.Len {
			t.Errorf("section %s at %d overlaps or is unaligned", sectionNames[i], s.Off)
		}
	}
	if a.Size()%pageSize != 0 || uint64(a.Size()) < a.g.Sec[secHist].Off+a.g.Sec[secHist].Len {
		t.Errorf("size %d", a.Size())
	}
	p := testParams()
	p.MinSize = 4 << 20
	if l, _ := NewLayout(p); l.Size() != 4<<20 {
		t.Errorf("MinSize ignored: %d", l.Size())
	}
	if a.CommandCapacity() != DefaultCommands || a.EventCapacity() != DefaultEvents || a.CommandTextMax() != paramNameMax || a.Partition() != "line1" {
		t.Errorf("accessors: %d %d %d %q", a.CommandCapacity(), a.EventCapacity(), a.CommandTextMax(), a.Partition())
	}
}

func TestLayoutErrors(t *testing.T) {
	for name, mut := range map[string]func(*Params){
		"long tag name":  func(p *Params) { p.Tags[0].Name = strings.Repeat("x", 65) },
		"long unit":      func(p *Params) { p.Tags[0].Unit = strings.Repeat("x", 17) },
		"long string":    func(p *Params) { p.Tags[1].Length = maxText + 1 },
		"long task name": func(p *Params) { p.Tasks[0].Name = strings.Repeat("x", 49) },
		"long partition": func(p *Params) { p.Partition = strings.Repeat("x", 33) },
		"ring too big":   func(p *Params) { p.Commands = maxRing + 1 },
		"ring too small": func(p *Params) { p.Events = 1 },
		"digits":         func(p *Params) { p.Latency.Digits = 6 },
		"highest":        func(p *Params) { p.Latency.Highest = 1 },
	} {
		p := testParams()
		mut(&p)
		if _, err := NewLayout(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	p := testParams()
	p.Commands = 100
	if l, _ := NewLayout(p); l.CommandCapacity() != 128 {
		t.Errorf("capacity not rounded to a power of two: %d", l.CommandCapacity())
	}
}

// TestAttachValidation covers every way a region can disagree with the
// layout a side computed; each is a clear error naming both values.
func TestAttachValidation(t *testing.T) {
	base := testParams()
	cases := []struct {
		name    string
		corrupt func(b []byte, g *geom)
		other   func(p *Params) // a different expectation instead of a corruption
		want    error
		text    string
		repairs bool // the writer rewrites what is corrupted
	}{
		{name: "blank", corrupt: func(b []byte, _ *geom) { clear(b) }, want: ErrNotFormatted},
		{name: "magic", corrupt: func(b []byte, _ *geom) { b[0] = 'X' }, want: ErrMagic, text: `"Xkrt-shm"`},
		{name: "version", corrupt: func(b []byte, g *geom) { le.PutUint32(b[hVersion:], 9) }, want: ErrVersion, text: "region has 9, expected 3"},
		{name: "crc", corrupt: func(b []byte, _ *geom) { b[hTags]++ }, want: ErrCorrupt, text: "header checksum"},
		{name: "header size", corrupt: resealed(func(b []byte) { le.PutUint32(b[hHeaderSize:], 4096) }), want: ErrCorrupt},
		{name: "huge tag count", corrupt: resealed(func(b []byte) { le.PutUint32(b[hTags:], math.MaxUint32) }), want: ErrCorrupt},
		{name: "ring not power of two", corrupt: resealed(func(b []byte) { le.PutUint32(b[hCmdCap:], 100) }), want: ErrCorrupt},
		{name: "section offset", corrupt: resealed(func(b []byte) { le.PutUint64(b[hSections+16*secImage:], 1<<40) }), want: ErrCorrupt, text: "process image section"},
		{name: "size beyond mapping", corrupt: resealed(func(b []byte) { le.PutUint64(b[hSize:], 1<<40) }), want: ErrSize},
		{name: "histogram counts", corrupt: resealed(func(b []byte) { le.PutUint32(b[hHistCounts:], 7) }), want: ErrCorrupt},
		{name: "config hash", other: func(p *Params) { p.ConfigHash[0] = 2 }, want: ErrConfigHash, text: "0200000000"},
		{name: "partition", other: func(p *Params) { p.Partition = "line2" }, want: ErrPartition, text: `region has "line1", expected "line2"`},
		{name: "size", other: func(p *Params) { p.MinSize = 1 << 20 }, want: ErrSize, text: "region has 569344, expected 1048576"},
		{name: "tag count", other: func(p *Params) { p.Tags = p.Tags[:1] }, want: ErrLayout},
		{name: "event ring", other: func(p *Params) { p.Events = 16 }, want: ErrLayout, text: "event ring capacity: region has 1024, expected 16"},
		{name: "directory text slot", corrupt: func(b []byte, g *geom) {
			le.PutUint32(b[g.Sec[secDir].Off+dirEntrySize+dTextOff:], 1<<20)
		}, want: ErrCorrupt, text: `string slot of tag 1 ("label")`, repairs: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, r := formatted(t, base)
			if c.corrupt != nil {
				c.corrupt(r.mem, &l.g)
			}
			want := l
			if c.other != nil {
				p := testParams()
				c.other(&p)
				var err error
				if want, err = NewLayout(p); err != nil {
					t.Fatal(err)
				}
			}
			_, err := AttachReader(r, want, ReaderOptions{})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("reader: %v, want %v containing %q", err, c.want, c.text)
			}
			if errors.Is(c.want, ErrNotFormatted) {
				return
			}
			if int64(r.Len()) < want.Size() {
				return // the writer refuses before looking; covered by the reader
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := AttachWriter(ctx, r, want, WriterOptions{}); c.repairs != (err == nil) || (err != nil && !errors.Is(err, c.want)) {
				t.Errorf("writer: %v, want %v", err, c.want)
			}
			if _, err := AttachWriter(ctx, r, want, WriterOptions{Force: true}); err != nil {
				t.Errorf("forced writer: %v", err)
			}
			if _, err := AttachReader(r, want, ReaderOptions{}); err != nil {
				t.Errorf("reader after forced reformat: %v", err)
			}
		})
	}
}

// resealed applies f to the header and fixes the CRC, as a deliberate (or
// unlucky) corruption would.
func resealed(f func(b []byte)) func(b []byte, g *geom) {
	return func(b []byte, _ *geom) {
		f(b)
		le.PutUint32(b[hCRC:], crcOf(b))
	}
}

func TestMappingTooSmall(t *testing.T) {
	l, _ := NewLayout(testParams())
	r := heapRegion(t, l.Size()-pageSize)
	if _, err := AttachWriter(context.Background(), r, l, WriterOptions{}); !errors.Is(err, ErrSize) {
		t.Errorf("writer: %v", err)
	}
	if err := Format(r, l); !errors.Is(err, ErrSize) {
		t.Errorf("format: %v", err)
	}
	if _, err := AttachReader(heapRegion(t, 512), nil, ReaderOptions{}); !errors.Is(err, ErrSize) {
		t.Errorf("reader on 512 bytes: %v", err)
	}
}

func TestInspectWithoutLayout(t *testing.T) {
	l, r := formatted(t, testParams())
	rd, err := AttachReader(r, nil, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rd.Layout().g != l.g || rd.Tags()[1].Name != "label" || rd.Tasks()[0].Name != "fast" {
		t.Errorf("inspected layout differs: %+v", rd.Tags())
	}
}

func TestLiveWriter(t *testing.T) {
	l, _ := NewLayout(testParams())
	r := fileRegion(t, l.Size())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w1, err := AttachWriter(ctx, r, l, WriterOptions{PID: 1111})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // the first executive keeps cycling
		for c := uint64(1); ; c++ {
			select {
			case <-done:
				return
			default:
			}
			w1.Beat(c, int64(c))
			time.Sleep(time.Millisecond)
		}
	}()
	_, err = AttachWriter(ctx, r, l, WriterOptions{PID: 2222, StaleAfter: 500 * time.Millisecond})
	close(done)
	var me *MismatchError
	if !errors.Is(err, ErrWriterLive) || !errors.As(err, &me) || !strings.Contains(me.Got, "pid 1111") {
		t.Fatalf("second writer while the first beats: %v", err)
	}
	// The first stops beating without detaching: after StaleAfter it is stale.
	w2, err := AttachWriter(ctx, r, l, WriterOptions{PID: 3333, StaleAfter: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("take over from a stale writer: %v", err)
	}
	if w2.BootID() == w1.BootID() || r.mem[hPID] == 0 {
		t.Error("boot id not renewed")
	}
	// A clean detach lets the next writer in at once, even with a huge StaleAfter.
	w2.Close()
	if _, err := AttachWriter(ctx, r, l, WriterOptions{StaleAfter: time.Hour}); err != nil {
		t.Fatalf("after a clean detach: %v", err)
	}
	// Force skips the wait; a cancelled context ends it.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := AttachWriter(cctx, r, l, WriterOptions{StaleAfter: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	if _, err := AttachWriter(cctx, r, l, WriterOptions{Force: true}); err != nil {
		t.Errorf("forced: %v", err)
	}
}

func TestWriterRestartDiscardsCommandsKeepsEvents(t *testing.T) {
	l, r := formatted(t, testParams())
	ctx := context.Background()
	w, _ := AttachWriter(ctx, r, l, WriterOptions{})
	rd, _ := AttachReader(r, l, ReaderOptions{})
	rd.Submit(wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(1)})
	w.PushEvent(wire.Event{Kind: wire.Fault, Text: "dying"})
	w.RecordExec(0, 100)
	w.Overrun(0)
	seq := atomic64(r.mem, l.g.Sec[secImage].Off)
	*seq = 5 // died mid-publish
	w2, err := AttachWriter(ctx, r, l, WriterOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	var c wire.Command
	if w2.PollCommand(&c) {
		t.Error("stale command survived the restart")
	}
	hb := rd.Heartbeat()
	if hb.CommandsDiscarded != 1 || hb.Overruns[0] != 0 || hb.State != wire.Booting || hb.Claims != 2 {
		t.Errorf("after restart: %+v", hb)
	}
	var ev [2]wire.Event
	if n := rd.Events(ev[:]); n != 1 || ev[0].Text != "dying" {
		t.Errorf("events after restart: %d %+v", n, ev[0])
	}
	if _, e, _ := rd.Histograms(0); e.TotalCount() != 0 {
		t.Error("histograms not reset")
	}
	if *seq != 6 {
		t.Errorf("image seq %d after restart, want 6 (unlocked)", *seq)
	}
	// The bridge's command ids keep growing across the restart.
	id, _ := rd.Submit(wire.Command{Kind: wire.WriteTag})
	if !w2.PollCommand(&c) || c.ID != id || id != 2 {
		t.Errorf("command after restart: %+v (id %d)", c, id)
	}
}

// TestCorruptRingIndices: impossible indices written by a broken peer are
// repaired, counted and never crash either side.
func TestCorruptRingIndices(t *testing.T) {
	l, r := formatted(t, testParams())
	w, _ := AttachWriter(context.Background(), r, l, WriterOptions{})
	rd, _ := AttachReader(r, l, ReaderOptions{})
	// Bridge's command head jumps far ahead.
	*atomic64(r.mem, l.g.Sec[secCommands].Off) = 1 << 50
	var c wire.Command
	if w.PollCommand(&c) {
		t.Error("took a command from a corrupt ring")
	}
	if rd.Heartbeat().Corrupt != 1 {
		t.Error("corruption not counted")
	}
	// Executive's event head goes behind the tail.
	*atomic64(r.mem, l.g.Sec[secEvents].Off) = 0
	*atomic64(r.mem, l.g.Sec[secEvents].Off+lineSize) = 10
	rd2, _ := AttachReader(r, l, ReaderOptions{})
	if n := rd2.Events(make([]wire.Event, 4)); n != 0 {
		t.Errorf("read %d events from a corrupt ring", n)
	}
	// Garbage in slots: lengths are clamped.
	off, _ := w.evt.reserve()
	for i := off; i < off+eventSlotSize; i++ {
		r.mem[i] = 0xff
	}
	w.evt.commit()
	var ev [1]wire.Event
	if rd2.Events(ev[:]); len(ev[0].Text) != wire.EventTextMax {
		t.Errorf("garbage event text %d bytes", len(ev[0].Text))
	}
	// Negative histogram counts are an error, not a panic.
	*atomic64(r.mem, l.g.Sec[secHist].Off) = math.MaxUint64
	if _, _, err := rd.Histograms(0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("negative histogram count: %v", err)
	}
	// A string slot length beyond its capacity is clamped.
	meta := l.g.Sec[secImage].Off + imageHead + imageSlotSize + isMeta
	*atomic64(r.mem, meta) = 0xffff << 16
	var im Image
	if err := rd.Snapshot(context.Background(), &im); err != nil || len(im.Text[1]) != 24 {
		t.Errorf("snapshot with a bad length: %v %d", err, len(im.Text[1]))
	}
}

func TestSnapshotDeadlineOnLockedImage(t *testing.T) {
	l, r := formatted(t, testParams())
	rd, _ := AttachReader(r, l, ReaderOptions{})
	*atomic64(r.mem, l.g.Sec[secImage].Off) = 3 // a writer died mid-publish
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	var im Image
	if err := rd.Snapshot(ctx, &im); !errors.Is(err, ErrTimeout) {
		t.Fatalf("snapshot of a locked image: %v", err)
	}
}
