// Package store is the bridge's store-and-forward buffer: records (encoded
// MQTT payloads) appended while the broker is unreachable and replayed, in
// order, after it comes back.
//
// Records live on disk in append-only segment files, each record framed by
// its length and CRC-32C, so the buffer survives a restart of the bridge and
// a torn last write is detected and cut off at open. Appends are buffered and
// made durable by Sync (the caller batches fsyncs, e.g. every 100 ms). The
// buffer is bounded: once it holds Max bytes further records are refused
// with ErrFull and counted in Dropped — nothing is dropped silently. Replay is
// at-least-once: a record whose delivery was interrupted by a crash is sent
// again after the restart. It needs a writable directory, nothing else.
package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrFull is returned by Append when the buffer holds its maximum.
var ErrFull = errors.New("store: buffer full")

// ErrCorrupt marks a record that failed its CRC (reported in logs; the
// segment is cut at the last good record).
var ErrCorrupt = errors.New("store: corrupt record")

const (
	headerLen   = 8
	segPrefix   = "seg-"
	segSuffix   = ".sf"
	maxRecord   = 16 << 20
	defaultSeg  = 4 << 20
	minSegBytes = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Store is an on-disk FIFO of records. It is safe for concurrent use.
type Store struct {
	dir    string
	max    int64
	segMax int64
	log    *slog.Logger

	mu       sync.Mutex
	segs     []segment // oldest first; the last is the one appended to
	w        *os.File
	bw       *bufio.Writer
	size     int64 // bytes on disk, all segments
	records  int
	dropped  uint64
	headSkip int64 // bytes of the oldest segment already replayed
	dirty    bool
}

type segment struct {
	n       uint64
	size    int64
	records int
}

// Open opens (creating it when needed) the buffer in dir, bounded to max
// bytes (0: 64 MiB), and recovers the records left by an earlier run.
func Open(dir string, max int64, log *slog.Logger) (*Store, error) {
	if max <= 0 {
		max = 64 << 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: mkdir %s: %w", dir, err)
	}
	seg := max / 8
	if seg > defaultSeg {
		seg = defaultSeg
	}
	if seg < minSegBytes {
		seg = minSegBytes
	}
	s := &Store{dir: dir, max: max, segMax: seg, log: log}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err != nil {
			continue
		}
		sg, err := s.recover(n)
		if err != nil {
			return nil, err
		}
		if sg.records == 0 {
			os.Remove(s.path(n))
			continue
		}
		s.segs = append(s.segs, sg)
		s.size += sg.size
		s.records += sg.records
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].n < s.segs[j].n })
	if s.records > 0 {
		log.Info("store: recovered buffered records", "dir", dir, "records", s.records, "bytes", s.size)
	}
	return s, nil
}

func (s *Store) path(n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%016d%s", segPrefix, n, segSuffix))
}

// recover scans a segment and truncates it after its last intact record.
func (s *Store) recover(n uint64) (segment, error) {
	p := s.path(n)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return segment{}, fmt.Errorf("store: open %s: %w", p, err)
	}
	defer f.Close()
	sg := segment{n: n}
	r := bufio.NewReader(f)
	for {
		_, err := readRecord(r, nil)
		if err != nil {
			if err != io.EOF {
				s.log.Warn("store: cutting segment at a damaged record", "path", p, "offset", sg.size, "err", err)
				if terr := f.Truncate(sg.size); terr != nil {
					return sg, fmt.Errorf("store: truncate %s: %w", p, terr)
				}
			}
			return sg, nil
		}
		sg.records++
		sg.size = mustOffset(f, r)
	}
}

func mustOffset(f *os.File, r *bufio.Reader) int64 {
	off, _ := f.Seek(0, io.SeekCurrent)
	return off - int64(r.Buffered())
}

// readRecord reads one framed record, reusing buf.
func readRecord(r io.Reader, buf []byte) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: short header", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	if n > maxRecord {
		return nil, fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: short body", ErrCorrupt)
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(h[4:8]) {
		return nil, fmt.Errorf("%w: crc mismatch", ErrCorrupt)
	}
	return buf, nil
}

// Append adds a record at the end. It returns ErrFull (and counts the drop)
// when the buffer is at its bound.
func (s *Store) Append(rec []byte) error {
	if len(rec) > maxRecord {
		return fmt.Errorf("store: record of %d bytes exceeds %d", len(rec), maxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	need := int64(len(rec) + headerLen)
	if s.size+need > s.max {
		s.dropped++
		return ErrFull
	}
	if s.w == nil || s.segs[len(s.segs)-1].size+need > s.segMax {
		if err := s.roll(); err != nil {
			return err
		}
	}
	var h [headerLen]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(rec, castagnoli))
	s.bw.Write(h[:])
	if _, err := s.bw.Write(rec); err != nil {
		return fmt.Errorf("store: write %s: %w", s.w.Name(), err)
	}
	last := &s.segs[len(s.segs)-1]
	last.size += need
	last.records++
	s.size += need
	s.records++
	s.dirty = true
	return nil
}

// roll closes the segment being written and starts a new one.
func (s *Store) roll() error {
	if err := s.closeWriter(); err != nil {
		return err
	}
	var n uint64 = 1
	if len(s.segs) > 0 {
		n = s.segs[len(s.segs)-1].n + 1
	}
	f, err := os.OpenFile(s.path(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", s.path(n), err)
	}
	s.w, s.bw = f, bufio.NewWriterSize(f, 64<<10)
	s.segs = append(s.segs, segment{n: n})
	return syncDir(s.dir)
}

func (s *Store) closeWriter() error {
	if s.w == nil {
		return nil
	}
	err := s.flushLocked()
	if cerr := s.w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: close %s: %w", s.w.Name(), cerr)
	}
	s.w, s.bw = nil, nil
	return err
}

func (s *Store) flushLocked() error {
	if s.w == nil || !s.dirty {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("store: write %s: %w", s.w.Name(), err)
	}
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", s.w.Name(), err)
	}
	s.dirty = false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}

// Sync makes every appended record durable (one fsync for the batch).
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

// Len is the number of buffered records and their bytes on disk.
func (s *Store) Len() (records int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records, s.size
}

// Dropped is the number of records refused because the buffer was full.
func (s *Store) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Replay hands every buffered record to send, oldest first. A record is
// removed once send returns nil; the first error stops the replay and keeps
// that record and the rest for the next Replay. Records appended during
// Replay are replayed too. send must not call the Store.
func (s *Store) Replay(send func(rec []byte) error) error {
	var buf []byte
	for {
		s.mu.Lock()
		if len(s.segs) == 0 {
			s.mu.Unlock()
			return nil
		}
		head := s.segs[0]
		if s.w != nil && len(s.segs) == 1 {
			// the only segment is being written: make its records readable
			if err := s.flushLocked(); err != nil {
				s.mu.Unlock()
				return err
			}
		}
		skip := s.headSkip
		s.mu.Unlock()

		f, err := os.Open(s.path(head.n))
		if err != nil {
			return fmt.Errorf("store: open %s: %w", s.path(head.n), err)
		}
		if _, err := f.Seek(skip, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("store: seek %s: %w", s.path(head.n), err)
		}
		r := bufio.NewReaderSize(f, 64<<10)
		off := skip
		for {
			s.mu.Lock()
			end := s.segs[0].size
			if len(s.segs) == 1 && s.w != nil && s.bw.Buffered() > 0 {
				// records appended meanwhile sit in the write buffer: make them readable
				if err := s.bw.Flush(); err != nil {
					s.mu.Unlock()
					f.Close()
					return fmt.Errorf("store: write %s: %w", s.w.Name(), err)
				}
			}
			s.mu.Unlock()
			if off >= end {
				break
			}
			buf, err = readRecord(r, buf)
			if err != nil {
				f.Close()
				return fmt.Errorf("store: %s at %d: %w", s.path(head.n), off, err)
			}
			if err := send(buf); err != nil {
				f.Close()
				return err
			}
			off += int64(len(buf) + headerLen)
			s.mu.Lock()
			s.headSkip = off
			s.records--
			s.mu.Unlock()
		}
		f.Close()
		if err := s.dropHead(off); err != nil {
			return err
		}
	}
}

// dropHead deletes the oldest segment once replayed up to off, unless
// records were appended to it meanwhile (the next pass sends them).
func (s *Store) dropHead(off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	head := s.segs[0]
	if head.size != off {
		return nil
	}
	if len(s.segs) == 1 && s.w != nil {
		if err := s.closeWriter(); err != nil {
			return err
		}
	}
	if err := os.Remove(s.path(head.n)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("store: remove %s: %w", s.path(head.n), err)
	}
	s.segs = s.segs[1:]
	s.size -= head.size
	s.headSkip = 0
	return nil
}

// Close flushes and closes the buffer; buffered records stay on disk.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeWriter()
}
