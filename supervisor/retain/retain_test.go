package retain

import (
	"context"
	"errors"
	"math"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

var vals1 = []Value{{Name: "sp", Value: 42.5}, {Name: "count", Value: 1e15}, {Name: "label", Text: "batch 7"}}
var vals2 = []Value{{Name: "sp", Value: 43}, {Name: "nan", Value: math.NaN()}, {Name: "inf", Value: math.Inf(-1)}}

func newStore(t *testing.T) *Store { return New(t.TempDir()+"/p1.retain", nil) }

func same(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.Text != y.Text || !(x.Value == y.Value || math.IsNaN(x.Value) && math.IsNaN(y.Value)) {
			return false
		}
	}
	return true
}

func TestRoundTripAndGenerations(t *testing.T) {
	s := newStore(t)
	if v, err := s.Load(); v != nil || err != nil {
		t.Fatalf("empty store: %v %v", v, err)
	}
	if err := s.Save(vals1); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(vals2); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Load(); err != nil || !same(v, vals2) {
		t.Fatalf("Load = %v %v", v, err)
	}
	if v, err := readFile(s.Path() + ".bak"); err != nil || !same(v, vals1) {
		t.Fatalf(".bak = %v %v", v, err)
	}
}

func TestCorruptionFallsBackToBak(t *testing.T) {
	good, _ := encode(vals2, time.Unix(0, 0))
	cases := map[string]func([]byte) []byte{
		"flip payload byte": func(b []byte) []byte { b[headerLen+3] ^= 0x20; return b },
		"flip crc byte":     func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"flip magic":        func(b []byte) []byte { b[0] = 'X'; return b },
		"truncate":          func(b []byte) []byte { return b[:len(b)-7] },
		"truncate header":   func(b []byte) []byte { return b[:5] },
		"wrong version":     func(b []byte) []byte { b[8] = 9; return b },
		"empty":             func([]byte) []byte { return nil },
		"appended":          func(b []byte) []byte { return append(b, 0) },
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			if err := s.Save(vals1); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(vals2); err != nil {
				t.Fatal(err)
			}
			b := mangle(append([]byte(nil), good...))
			if err := os.WriteFile(s.Path(), b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := readFile(s.Path())
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Path != s.Path() {
				t.Fatalf("corrupt file read as %v", err)
			}
			if v, err := s.Load(); err != nil || !same(v, vals1) {
				t.Fatalf("Load = %v %v, want the .bak generation", v, err)
			}
			// The next save must not replace the good .bak with the corrupt file.
			if err := s.Save(vals2); err != nil {
				t.Fatal(err)
			}
			if v, err := readFile(s.Path() + ".bak"); err != nil || !same(v, vals1) {
				t.Fatalf(".bak after save over a corrupt file = %v %v", v, err)
			}
		})
	}
}

func TestEveryGenerationCorrupt(t *testing.T) {
	s := newStore(t)
	os.WriteFile(s.Path(), []byte("garbage"), 0o600)
	os.WriteFile(s.Path()+".bak", []byte("MKRTRETN"), 0o600)
	v, err := s.Load()
	if v != nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load = %v %v", v, err)
	}
}

func TestCrashBetweenWriteAndRenameKeepsOldFile(t *testing.T) {
	s := newStore(t)
	if err := s.Save(vals1); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("power lost")
	s.beforeRename = func() error { return crash }
	if err := s.Save(vals2); !errors.Is(err, crash) {
		t.Fatalf("Save = %v", err)
	}
	// The half-done save left a temp file; the store still reads the old values.
	if _, err := os.Stat(s.Path() + ".tmp"); err != nil {
		t.Fatalf("temp file: %v", err)
	}
	if v, err := New(s.Path(), nil).Load(); err != nil || !same(v, vals1) {
		t.Fatalf("after crash: %v %v", v, err)
	}
	// Crash after the current file became .bak, before the new one took its place.
	s.beforeRename = nil
	os.Rename(s.Path(), s.Path()+".bak")
	if v, err := New(s.Path(), nil).Load(); err != nil || !same(v, vals1) {
		t.Fatalf("with only .bak: %v %v", v, err)
	}
	if err := s.Save(vals2); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Load(); !same(v, vals2) {
		t.Fatalf("recovered save: %v", v)
	}
}

func TestSaverBoundsTheRate(t *testing.T) {
	s := newStore(t)
	clk := supervisortest.NewClock(time.Unix(0, 0))
	sv := NewSaver(s, time.Second, clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sv.Run(runCtx) }()

	sv.Update(vals1)
	if !clk.BlockUntil(ctx, 1) { // first change saved at once, then the rate limit waits
		t.Fatal("saver did not wait")
	}
	if sv.Saves() != 1 {
		t.Fatalf("saves %d", sv.Saves())
	}
	for i := range 100 {
		sv.Update([]Value{{Name: "sp", Value: float64(i)}})
	}
	if sv.Saves() != 1 {
		t.Fatalf("burst saved %d times inside the interval", sv.Saves())
	}
	clk.Advance(time.Second)
	for sv.Saves() != 2 {
		if ctx.Err() != nil {
			t.Fatal("burst never saved")
		}
		time.Sleep(time.Millisecond)
	}
	if v, _ := s.Load(); len(v) != 1 || v[0].Value != 99 {
		t.Fatalf("saved %v, want the last value of the burst", v)
	}
	clk.BlockUntil(ctx, 1)
	sv.Update(vals2)
	stop() // stop inside the interval: the pending change is flushed
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Load(); !same(v, vals2) {
		t.Fatalf("not flushed on stop: %v", v)
	}
}

func TestTableRoundTrip(t *testing.T) {
	cfg := &configs.Config{Tags: []configs.Tag{
		{Name: "sp", Retain: true, Initial: configs.Value{Raw: "1", Set: true}},
		{Name: "pv"},
		{Name: "recipe", Type: tag.String, Retain: true},
	}}
	tbl, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	tbl.Samples[0].Value, tbl.Text[2] = 55, "B"
	got := FromTable(tbl)
	if !reflect.DeepEqual(got, []Value{{Name: "sp", Value: 55}, {Name: "recipe", Text: "B"}}) {
		t.Fatalf("FromTable = %v", got)
	}
	fresh, _ := cfg.TagTable()
	n, skipped := Restore(fresh, append(got, Value{Name: "gone", Value: 1}, Value{Name: "pv", Value: 2}))
	if n != 2 || !reflect.DeepEqual(skipped, []string{"gone (not a retained tag)", "pv (not a retained tag)"}) || fresh.Samples[0].Value != 55 || fresh.Text[2] != "B" || fresh.Samples[1].Value != 0 {
		t.Fatalf("Restore: %d %v %v", n, skipped, fresh.Samples)
	}
}

// A retained value is checked like any write before it is restored: a
// file written before the tag's limits changed, or one holding NaN, must
// not put a value into the plant that the tag no longer admits.
func TestRestoreChecksValues(t *testing.T) {
	max := 10.0
	cfg := &configs.Config{Tags: []configs.Tag{
		{Name: "sp", Retain: true, Max: &max, Initial: configs.Value{Raw: "1", Set: true}},
		{Name: "count", Type: tag.Int16, Retain: true},
		{Name: "recipe", Type: tag.String, Length: 4, Retain: true},
	}}
	for _, v := range []Value{{Name: "sp", Value: math.NaN()}, {Name: "sp", Value: math.Inf(1)}, {Name: "sp", Value: 11},
		{Name: "count", Value: 1.5}, {Name: "count", Value: 40000}, {Name: "recipe", Text: "longer"}} {
		tbl, _ := cfg.TagTable()
		if n, skipped := Restore(tbl, []Value{v}); n != 0 || len(skipped) != 1 || tbl.Samples[0].Value != 1 || tbl.Samples[1].Value != 0 || tbl.Text[2] != "" {
			t.Errorf("Restore(%+v) = %d %v; the table now %v %q", v, n, skipped, tbl.Samples, tbl.Text)
		}
	}
}

// BenchmarkSave is one durable save of 100 retained values (two fsyncs).
func BenchmarkSave(b *testing.B) {
	s := New(b.TempDir()+"/p1.retain", nil)
	vals := make([]Value, 100)
	for i := range vals {
		vals[i] = Value{Name: "tag" + strconv.Itoa(i), Value: float64(i) * 1.5}
	}
	for b.Loop() {
		if err := s.Save(vals); err != nil {
			b.Fatal(err)
		}
	}
}
