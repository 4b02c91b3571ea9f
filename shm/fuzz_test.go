package shm

import (
	"context"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
)

// FuzzAttach feeds arbitrary headers (and the bytes after them) to the
// reader's validation: it must never panic, and whatever it accepts must be
// safe to read through every Reader method. The seed corpus in
// testdata/fuzz/FuzzAttach holds a valid header and corrupted ones.
func FuzzAttach(f *testing.F) {
	l, _ := NewLayout(testParams())
	valid := make([]byte, headerSize)
	encodeHeader(valid, &l.g)
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add(make([]byte, headerSize), false)
	// reseal makes the header's magic, version and CRC right, so the fuzzer
	// reaches the checks behind them.
	f.Fuzz(func(t *testing.T, hdr []byte, reseal bool) {
		if len(hdr) > 1<<16 {
			return
		}
		r := heapRegion(t, 1<<20)
		// A formatted region underneath, so an accepted header finds real
		// sections; then the fuzzed header over it.
		if err := Format(r, l); err != nil {
			t.Fatal(err)
		}
		copy(r.mem, hdr)
		if reseal {
			copy(r.mem[hMagic:], magic[:])
			le.PutUint32(r.mem[hVersion:], Version)
			le.PutUint32(r.mem[hCRC:], crcOf(r.mem))
		}
		if rd, err := AttachReader(r, nil, ReaderOptions{}); err == nil {
			useReader(rd)
		}
	})
}

// useReader calls every Reader method on a reader attached to a region
// the fuzzer wrote: whatever the reader accepted must be safe to read.
func useReader(rd *Reader) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var im Image
	rd.Snapshot(ctx, &im)
	rd.Events(make([]wire.Event, 8))
	rd.Results(make([]wire.Result, 8))
	rd.Heartbeat()
	for task := range rd.Tasks() {
		rd.Histograms(task)
	}
	rd.Submit(wire.Command{Kind: wire.WriteTag})
}
