package shm

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
)

// FuzzRegionHeader mutates the header of a formatted region — what a
// stray write, a foreign process or a file left by another build could
// leave there — and runs every side that attaches to an existing region:
// the host's CheckNoWriter (run before it formats), the writer with and
// without Force, the reader without a layout and the hand-over area. Each
// must return an error or a usable attachment, never panic or index out
// of range. The seed corpus is in testdata/fuzz/FuzzRegionHeader.
func FuzzRegionHeader(f *testing.F) {
	l, err := NewLayout(testParams())
	if err != nil {
		f.Fatal(err)
	}
	valid := make([]byte, headerSize)
	encodeHeader(valid, &l.g)
	f.Add(valid, uint16(0), false)
	f.Add(valid[:hCRC], uint16(8), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, uint16(hVersion), true)
	f.Fuzz(func(t *testing.T, patch []byte, at uint16, reseal bool) {
		if int(at)+len(patch) > headerSize {
			return
		}
		r := heapRegion(t, l.Size())
		if err := Format(r, l); err != nil {
			t.Fatal(err)
		}
		copy(r.mem[at:], patch)
		if reseal {
			le.PutUint32(r.mem[hCRC:], crcOf(r.mem))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_ = CheckNoWriter(ctx, r, time.Millisecond)
		if rd, err := AttachReader(r, nil, ReaderOptions{}); err == nil {
			useReader(rd)
		}
		if h, err := OpenHandOver(r); err == nil {
			_ = h
		}
		quiet := slog.New(slog.DiscardHandler)
		o := WriterOptions{Logger: quiet, StaleAfter: time.Millisecond, PID: 1}
		if w, err := AttachWriter(ctx, r, l, o); err == nil {
			w.Beat(1, 1)
			w.Close()
		}
		o.Force = true
		w, err := AttachWriter(ctx, r, l, o)
		if err != nil {
			t.Fatalf("a forced writer is refused: %v", err)
		}
		w.Beat(2, 2)
		if _, err := AttachReader(r, l, ReaderOptions{}); err != nil {
			t.Fatalf("the region a forced writer formatted is refused: %v", err)
		}
	})
}

// FuzzCommandRing fills the command ring's indices and slots with
// garbage (a producer that broke the protocol, or a foreign writer of the
// region) and drains it as the executive does. Every command taken must
// be bounded (its text inside the writer's buffer), a write to a tag the
// directory lacks or a value the tag does not admit is refused by the one
// write check, and the drain ends. The seed corpus is in
// testdata/fuzz/FuzzCommandRing.
func FuzzCommandRing(f *testing.F) {
	p := testParams()
	l, err := NewLayout(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, uint64(0), uint64(1), false)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, uint64(0), uint64(1<<63), true)
	f.Add(make([]byte, 512), uint64(5), uint64(3), true)
	f.Fuzz(func(t *testing.T, slots []byte, consumer, producer uint64, units bool) {
		r := heapRegion(t, l.Size())
		if err := Format(r, l); err != nil {
			t.Fatal(err)
		}
		m := mem(r.mem)
		sec := l.g.Sec[secCommands]
		body := r.mem[int(sec.Off)+ringHead : int(sec.Off+sec.Len)]
		for i := 0; len(slots) > 0 && i < len(body); i += len(slots) {
			copy(body[i:], slots)
		}
		m.store(int(sec.Off)+lineSize, consumer)
		quiet := slog.New(slog.DiscardHandler)
		w, err := AttachWriter(context.Background(), r, l, WriterOptions{Logger: quiet, StaleAfter: time.Millisecond, PID: 1})
		if err != nil {
			t.Fatal(err)
		}
		m.store(int(sec.Off), producer) // the producer's index
		dir := p.Tags
		textMax := int(l.g.CmdText)
		check := func(c *wire.Command) {
			if len(c.Value.Text) > textMax || len(c.Param) > textMax {
				t.Fatalf("command text of %d/%d bytes, the slot holds %d", len(c.Value.Text), len(c.Param), textMax)
			}
			if c.Kind != wire.WriteTag {
				return
			}
			s := wire.CheckTagWrite(dir, c.Tag, c.Value)
			if int(c.Tag) < 0 || int(c.Tag) >= len(dir) {
				if s != wire.UnknownTag {
					t.Fatalf("a write to tag %d (the directory has %d) is %v", c.Tag, len(dir), s)
				}
				return
			}
			if s == wire.Applied && !dir[c.Tag].Writable {
				t.Fatalf("a write to read-only tag %s is accepted", dir[c.Tag].Name)
			}
		}
		limit := 4 * l.CommandCapacity()
		for taken := 0; taken <= limit; {
			if units {
				unit := w.PollUnit()
				if unit == nil {
					return
				}
				for i := range unit {
					check(&unit[i])
					w.Reply(wire.Result{ID: unit[i].ID, Status: wire.Applied})
				}
				taken += len(unit)
				continue
			}
			var c wire.Command
			if !w.PollCommand(&c) {
				return
			}
			check(&c)
			w.Reply(wire.Result{ID: c.ID, Status: wire.Applied})
			taken++
		}
		t.Fatalf("the drain did not end after %d commands from a ring of %d", limit, l.CommandCapacity())
	})
}
