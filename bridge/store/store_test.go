package store_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mkrt/mkrt/bridge/store"
)

func replayAll(t *testing.T, s *store.Store) []string {
	t.Helper()
	var got []string
	if err := s.Replay(func(rec []byte) error { got = append(got, string(rec)); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOrderAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, 1<<20, nil) // 128 KiB segments
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 1000)
	const n = 500
	for i := 0; i < n; i++ {
		copy(rec, fmt.Sprintf("%06d", i))
		if err := s.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	s, err = store.Open(dir, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Len(); r != n {
		t.Fatalf("recovered %d records, want %d", r, n)
	}
	got := replayAll(t, s)
	if len(got) != n {
		t.Fatalf("replayed %d, want %d", len(got), n)
	}
	for i, g := range got {
		if g[:6] != fmt.Sprintf("%06d", i) {
			t.Fatalf("record %d is %q: out of order", i, g[:6])
		}
	}
	if r, b := s.Len(); r != 0 || b != 0 {
		t.Fatalf("after replay: %d records, %d bytes", r, b)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "seg-*"))
	if len(segs) != 0 {
		t.Fatalf("segments left: %v", segs)
	}
}

func TestBoundCountsDrops(t *testing.T) {
	s, err := store.Open(t.TempDir(), 64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 1000)
	var full int
	for i := 0; i < 100; i++ {
		if err := s.Append(rec); errors.Is(err, store.ErrFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full == 0 || s.Dropped() != uint64(full) {
		t.Fatalf("full=%d dropped=%d", full, s.Dropped())
	}
	if r, b := s.Len(); b > 64<<10 || r != 100-full {
		t.Fatalf("%d records %d bytes", r, b)
	}
}

func TestTornTailCut(t *testing.T) {
	dir := t.TempDir()
	s, _ := store.Open(dir, 0, nil)
	for i := 0; i < 3; i++ {
		s.Append([]byte(fmt.Sprint("rec", i)))
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	f, _ := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{9, 0, 0, 0, 1, 2}) // half a header: a write cut by a crash
	f.Close()
	s, err := store.Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := replayAll(t, s)
	if len(got) != 3 || got[2] != "rec2" {
		t.Fatalf("got %q", got)
	}
	// appending after recovery continues cleanly
	s.Append([]byte("after"))
	if got := replayAll(t, s); len(got) != 1 || got[0] != "after" {
		t.Fatalf("got %q", got)
	}
}

func TestReplayStopsOnErrorAndResumes(t *testing.T) {
	s, _ := store.Open(t.TempDir(), 0, nil)
	for i := 0; i < 10; i++ {
		s.Append([]byte{byte(i)})
	}
	boom := errors.New("offline")
	var sent []byte
	err := s.Replay(func(rec []byte) error {
		if len(sent) == 4 {
			return boom
		}
		sent = append(sent, rec[0])
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	s.Replay(func(rec []byte) error { sent = append(sent, rec[0]); return nil })
	for i, b := range sent {
		if int(b) != i || len(sent) != 10 {
			t.Fatalf("sent %v", sent)
		}
	}
}

func TestAppendDuringReplay(t *testing.T) {
	s, _ := store.Open(t.TempDir(), 0, nil)
	for i := 0; i < 5; i++ {
		s.Append([]byte{byte(i)})
	}
	var sent []byte
	next := byte(5)
	err := s.Replay(func(rec []byte) error {
		sent = append(sent, rec[0])
		if next < 20 {
			// new changes keep arriving while the backlog is sent
			if err := s.Append([]byte{next}); err != nil {
				return err
			}
			next++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 20 {
		t.Fatalf("sent %v", sent)
	}
	for i, b := range sent {
		if int(b) != i {
			t.Fatalf("out of order: %v", sent)
		}
	}
	if r, _ := s.Len(); r != 0 {
		t.Fatalf("%d left", r)
	}
}
