package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/wire"
)

// newPlant is a running fake plant with a writable "sp" (0..10, initially
// 3), a read-only "level" and a writable "mode" string.
func newPlant(t *testing.T) *bridgetest.Plant {
	t.Helper()
	max := 10.0
	p, err := bridgetest.NewPlantFromConfig(&configs.Config{Tags: []configs.Tag{
		{Name: "sp", Writable: true, Max: &max, Initial: configs.Value{Raw: "3", Set: true}},
		{Name: "level"},
		{Name: "mode", Type: "string", Writable: true, Initial: configs.Value{Raw: "auto", Set: true}},
	}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.Start(ctx, time.Millisecond)
	return p
}

// openLog opens a log in a directory of mode 0750, as the state directory is.
func openLog(t *testing.T, o audit.Options) (*audit.Log, string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o750)
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.New(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func entries(t *testing.T, path string) []audit.Entry {
	t.Helper()
	var es []audit.Entry
	err := audit.Scan(path, func(e audit.Entry) error { es = append(es, e); return nil },
		func(where string, err error) { t.Errorf("%s: %v", where, err) })
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestEveryWriteRecorded(t *testing.T) {
	p := newPlant(t)
	l, path := openLog(t, audit.Options{})
	ap := audit.Wrap(p, l)
	ctx := context.Background()
	if _, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(7), Origin: wire.NewOrigin("json:nodered")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 2, Value: wire.Text("manual"), Origin: wire.NewOrigin("json:nodered")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(70), Origin: wire.NewOrigin("modbus:10.0.0.9:5000")}); err == nil {
		t.Fatal("out of range accepted")
	}
	es := entries(t, path)
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	if e := es[0]; !e.OK || e.Tag != "sp" || e.Old != 3.0 || e.New != 7.0 || e.Who != "nodered" || e.Source != "json" || e.Cycle == 0 || e.Status != "applied" {
		t.Fatalf("accepted write: %+v", e)
	}
	if e := es[1]; !e.OK || e.Old != "auto" || e.New != "manual" {
		t.Fatalf("string write: %+v", e)
	}
	if e := es[2]; e.OK || e.Error == "" || e.Source != "modbus" || !e.Refused {
		t.Fatalf("rejected write: %+v", e)
	}
}

// Finding 6: an out-of-range attempt left no trace when the protocol
// server's check refused it before the write; the wrapper checks now, and
// records who tried (the MQTT user and client id, not only the topic).
func TestRefusedOutOfRangeRecorded(t *testing.T) {
	p := newPlant(t)
	l, path := openLog(t, audit.Options{})
	ap := audit.Wrap(p, l)
	who := plant.Principal{Protocol: "json", User: "operator", ClientID: "nodered-1", Peer: "127.0.0.1:50312"}
	ctx := plant.WithPrincipal(context.Background(), who)
	_, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(70), Origin: wire.NewOrigin("json:mqtt mkrt/tank/sp/set")})
	if !errors.Is(err, wire.ErrOutOfRange) {
		t.Fatalf("write of 70: %v", err)
	}
	if _, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(1)}); !errors.Is(err, wire.ErrReadOnly) {
		t.Fatalf("write of a read-only tag: %v", err)
	}
	if n := len(p.Applied()); n != 0 {
		t.Fatalf("%d refused writes reached the plant", n)
	}
	es := entries(t, path)
	if len(es) != 2 {
		t.Fatalf("%d entries, want both refusals: %+v", len(es), es)
	}
	e := es[0]
	if e.OK || !e.Refused || e.Status != "out of range" || !strings.Contains(e.Reason, "out of range") || e.Tag != "sp" || e.New != 70.0 {
		t.Errorf("refusal: %+v", e)
	}
	if e.Principal == nil || *e.Principal != who || e.Source != "json" || e.Who != "operator" {
		t.Errorf("who: %+v %+v", e.Principal, e)
	}
	if e := es[1]; !e.Refused || e.Status != "read-only" || e.Tag != "level" {
		t.Errorf("read-only refusal: %+v", e)
	}
}

// Finding 6: an attempt an ACL refused (the protocol server calls Refuse)
// is recorded with who tried and why.
func TestRefusalByACLRecorded(t *testing.T) {
	l, path := openLog(t, audit.Options{})
	var r plant.Refuser = l
	who := plant.Principal{Protocol: "json", User: "viewer", ClientID: "c1", Peer: "127.0.0.1:4000"}
	plant.Refuse(context.Background(), r, plant.Refusal{Principal: who, Tag: "sp", Value: "4.2", Reason: "user viewer is read-only (will message)"})
	// the principal may come with the context instead
	plant.Refuse(plant.WithPrincipal(context.Background(), plant.Principal{Protocol: "modbus", Peer: "10.0.0.7:502"}), r,
		plant.Refusal{Tag: "sp", Value: "1", Reason: "plaintext Modbus is read-only for 10.0.0.7"})
	es := entries(t, path)
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	if e := es[0]; !e.Refused || e.OK || e.Who != "viewer" || e.Principal == nil || e.Principal.ClientID != "c1" || e.Tag != "sp" || e.New != "4.2" ||
		e.Reason != "user viewer is read-only (will message)" {
		t.Errorf("ACL refusal: %+v", e)
	}
	if e := es[1]; e.Source != "modbus" || e.Who != "10.0.0.7:502" || !e.Refused {
		t.Errorf("modbus refusal: %+v", e)
	}
}

// batchPlant is a Batcher over the fake plant: it applies the writes one
// after another (enough to see what the audit records).
type batchPlant struct {
	*bridgetest.Plant
	calls int
}

func (b *batchPlant) WriteAll(ctx context.Context, cs []wire.Command) ([]wire.Result, error) {
	b.calls++
	var out []wire.Result
	for _, c := range cs {
		r, err := b.Write(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func TestBatchEachCommandRecorded(t *testing.T) {
	bp := &batchPlant{Plant: newPlant(t)}
	l, path := openLog(t, audit.Options{})
	ap, ok := audit.Wrap(bp, l).(plant.Batcher)
	if !ok {
		t.Fatal("the audited Batcher is not a Batcher")
	}
	if _, ok := audit.Wrap(struct{ plant.Plant }{newPlant(t)}, l).(plant.Batcher); ok {
		t.Fatal("the audited plain plant claims to be a Batcher")
	}
	ctx := plant.WithPrincipal(context.Background(), plant.Principal{Protocol: "modbus", Peer: "10.0.0.7:5000", Role: "operator"})
	res, err := ap.WriteAll(ctx, []wire.Command{{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(4)}, {Kind: wire.WriteTag, Tag: 2, Value: wire.Text("manual")}})
	if err != nil || len(res) != 2 {
		t.Fatalf("unit: %v %v", res, err)
	}
	_, err = ap.WriteAll(ctx, []wire.Command{{Kind: wire.WriteTag, Tag: 2, Value: wire.Text("auto")}, {Kind: wire.WriteTag, Tag: 0, Value: wire.Number(11)}})
	if !errors.Is(err, wire.ErrOutOfRange) {
		t.Fatalf("refused unit: %v", err)
	}
	if bp.calls != 1 {
		t.Fatalf("the refused unit reached the plant (%d calls)", bp.calls)
	}
	es := entries(t, path)
	if len(es) != 4 {
		t.Fatalf("%d entries: %+v", len(es), es)
	}
	if !es[0].OK || es[0].Old != 3.0 || !es[1].OK || es[1].Old != "auto" || es[0].Principal.Role != "operator" {
		t.Errorf("applied unit: %+v %+v", es[0], es[1])
	}
	for _, e := range es[2:] {
		if e.OK || !e.Refused || !strings.Contains(e.Reason, "out of range") {
			t.Errorf("refused unit: %+v", e)
		}
	}
	if !strings.Contains(es[2].Reason, "refused with sp") {
		t.Errorf("the other command's reason names the refused one: %q", es[2].Reason)
	}
}

// Rotation by size keeps every entry, in order, in audit.jsonl.N … .1 and
// audit.jsonl, each file within the maximum, with mode 0640.
func TestRotationLosesNoEntry(t *testing.T) {
	const n, writers = 600, 4
	l, path := openLog(t, audit.Options{MaxSize: 2048, Keep: 1000})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / writers {
				if err := l.Record(audit.Entry{Source: "test", Who: fmt.Sprint(w), Tag: fmt.Sprintf("t%d", i), OK: true}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	files := audit.Files(path)
	if len(files) < 10 {
		t.Fatalf("%d files: not rotated", len(files))
	}
	if files[len(files)-1] != path || files[0] != path+fmt.Sprintf(".%d", len(files)-1) {
		t.Fatalf("files not oldest first: %v", files)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 2048 || st.Mode().Perm() != 0o640 {
			t.Errorf("%s: %d bytes, mode %v", f, st.Size(), st.Mode().Perm())
		}
	}
	seen := map[string]int{}
	last := map[string]int{}
	for _, e := range entries(t, path) {
		seen[e.Who+"/"+e.Tag]++
		var i int
		fmt.Sscanf(e.Tag, "t%d", &i)
		if prev, ok := last[e.Who]; ok && i != prev+1 {
			t.Errorf("writer %s: entry %d after %d", e.Who, i, prev)
		}
		last[e.Who] = i
	}
	if len(seen) != n {
		t.Fatalf("%d of %d entries found", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s recorded %d times", k, c)
		}
	}
}

func TestRotationKeepsCount(t *testing.T) {
	l, path := openLog(t, audit.Options{MaxSize: 300, Keep: 3})
	for _, i := range []int{1, 2, 3, 4, 5} { // kept under a larger keep before
		os.WriteFile(fmt.Sprintf("%s.%d", path, i), []byte("{}\n"), 0o640)
	}
	for i := range 100 {
		if err := l.Record(audit.Entry{Source: "test", Tag: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if files := audit.Files(path); len(files) != 4 {
		t.Fatalf("files %v, want 3 rotated and the current", files)
	}
	es := entries(t, path)
	if es[len(es)-1].Tag != "99" {
		t.Fatalf("last entry %+v", es[len(es)-1])
	}
}

// A line cut short by a crash is reported by Scan, and the next entry
// starts a line of its own.
func TestCutLineRepaired(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700) // no group: the file is the owner's alone
	path := filepath.Join(dir, "audit.jsonl")
	os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","source":"cli","who":"root","tag":"sp","ok":true}`+"\n"+`{"time":"2026-01-0`), 0o644) // too wide: New narrows it
	l, err := audit.New(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(audit.Entry{Source: "cli", Tag: "after"})
	l.Close()
	var got []string
	var bad []string
	audit.Scan(path, func(e audit.Entry) error { got = append(got, e.Tag); return nil }, func(where string, err error) { bad = append(bad, where) })
	if strings.Join(got, ",") != "sp,after" || len(bad) != 1 || bad[0] != path+":2" {
		t.Fatalf("entries %v, bad lines %v", got, bad)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := audit.New(filepath.Join(t.TempDir(), "a"), audit.Options{Keep: -1}); err == nil || !strings.Contains(err.Error(), "may be negative") {
		t.Fatalf("keep -1: %v", err)
	}
	if err := audit.Scan(filepath.Join(t.TempDir(), "none"), func(audit.Entry) error { return nil }, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no log: %v", err)
	}
}

// BenchmarkRecord is the cost of one durable entry (a write and an fsync),
// rotation included.
func BenchmarkRecord(b *testing.B) {
	l, err := audit.New(filepath.Join(b.TempDir(), "audit.jsonl"), audit.Options{MaxSize: 1 << 20, Keep: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := audit.Entry{Source: "json", Who: "operator", Principal: &plant.Principal{Protocol: "json", User: "operator", ClientID: "nodered-1"},
		Tag: "level_sp", Old: 2.0, New: 2.5, OK: true, Status: "applied", Cycle: 123456}
	for b.Loop() {
		if err := l.Record(e); err != nil {
			b.Fatal(err)
		}
	}
}
