package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/plant"
)

// writeAudit fills dir/audit.jsonl (rotated once) with an accepted write,
// a refused one, an ACL refusal and an apply.
func writeAudit(t *testing.T, dir string, now time.Time) {
	t.Helper()
	l, err := audit.New(filepath.Join(dir, "audit.jsonl"), audit.Options{MaxSize: 600, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	old := now.Add(-3 * time.Hour)
	for _, e := range []audit.Entry{
		{Time: old, Source: "json", Who: "operator", Principal: &plant.Principal{Protocol: "json", User: "operator", ClientID: "nodered-1"},
			Tag: "level_sp", Old: 2.0, New: 4.5, OK: true, Status: "applied", Cycle: 812},
		{Source: "modbus", Who: "10.0.0.7:50122", Tag: "level_sp", New: 70.0, Refused: true, Status: "out of range", Reason: "out of range: 70 is above max 10", Error: "rejected: level_sp: out of range"},
	} {
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	l.Refuse(context.Background(), plant.Refusal{Principal: plant.Principal{Protocol: "json", User: "viewer", ClientID: "c7"}, Tag: "level_sp", Value: "4.2", Reason: "user viewer is read-only"})
	ctx := plant.WithPrincipal(context.Background(), plant.Principal{Protocol: "cli", User: "root", Peer: "uid 0 gid 0 pid 4711"})
	l.RecordChange(ctx, audit.Change{Protocol: "apply", Generation: 2, Changes: []string{"pid.kp: 1 -> 2 (cycle 900)"}})
	if len(audit.Files(filepath.Join(dir, "audit.jsonl"))) < 2 {
		t.Fatal("the log was not rotated: the test reads one file only")
	}
}

func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	writeAudit(t, dir, now)

	out, err := runMkrt(t, "audit", "--state-dir", dir)
	if err != nil {
		t.Fatalf("mkrt audit: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("want a header and 4 rows, oldest first:\n%s", out)
	}
	for i, want := range [][]string{
		{"operator (nodered-1)", "json", "level_sp", "2 → 4.5", "applied (cycle 812)"},
		{"10.0.0.7:50122", "modbus", "→ 70", "refused: out of range: 70 is above max 10"},
		{"viewer (c7)", `→ "4.2"`, "refused: user viewer is read-only"},
		{"root (uid 0 gid 0 pid 4711)", "apply", "generation 2: pid.kp: 1 -> 2 (cycle 900)", "applied"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d lacks %q: %s", i+1, w, lines[i+1])
			}
		}
	}

	out, err = runMkrt(t, "audit", "--state-dir", dir, "--since", "1h", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var es []audit.Entry
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		es = append(es, e)
	}
	if len(es) != 3 || es[0].Source != "modbus" || !es[1].Refused || es[2].Generation != 2 {
		t.Fatalf("--since 1h --json: %+v", es)
	}

	if _, err := runMkrt(t, "audit", "--state-dir", dir, "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "write a duration") {
		t.Errorf("bad --since: %v", err)
	}
	if _, err := runMkrt(t, "audit", "--state-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no audit log in") {
		t.Errorf("no log: %v", err)
	}
}

func TestAuditFindsThePartition(t *testing.T) {
	mine, roots := t.TempDir(), t.TempDir()
	bases := []string{mine, roots}
	if _, err := findStateDir(bases, ""); err == nil || !strings.Contains(err.Error(), "give the partition's NAME") {
		t.Errorf("none: %v", err)
	}
	add := func(base, name string) {
		os.MkdirAll(filepath.Join(base, name), 0o750)
		os.WriteFile(filepath.Join(base, name, "audit.jsonl"), nil, 0o640)
	}
	add(roots, "tank")
	if d, err := findStateDir(bases, ""); err != nil || d != filepath.Join(roots, "tank") {
		t.Errorf("the only one, a root supervisor's: %s %v", d, err)
	}
	if d, _ := findStateDir(bases, "tank"); d != filepath.Join(roots, "tank") {
		t.Errorf("named, a root supervisor's: %s", d)
	}
	add(mine, "boiler")
	if _, err := findStateDir(bases, ""); err == nil || !strings.Contains(err.Error(), "2 partitions have audit logs") || !strings.Contains(err.Error(), "choose one, mkrt audit NAME") {
		t.Errorf("two: %v", err)
	}
	if d, _ := findStateDir(bases, "boiler"); d != filepath.Join(mine, "boiler") {
		t.Errorf("named: %s", d)
	}
	if d, _ := findStateDir(bases, "none"); d != filepath.Join(mine, "none") {
		t.Errorf("unknown name: %s", d)
	}
}

func TestAuditFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.New(path, audit.Options{MaxSize: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Record(audit.Entry{Source: "cli", Tag: "before"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- followAudit(ctx, path, 5*time.Millisecond, func(e audit.Entry) error { got <- e.Tag; return nil }, func(string, error) {})
	}()
	time.Sleep(50 * time.Millisecond)
	const n = 30
	for i := range n {
		l.Record(audit.Entry{Source: "cli", Tag: "t" + string(rune('a'+i%26)) + string(rune('0'+i/26))})
		time.Sleep(2 * time.Millisecond)
	}
	for i := range n {
		select {
		case tag := <-got:
			if want := "t" + string(rune('a'+i%26)) + string(rune('0'+i/26)); tag != want {
				t.Fatalf("entry %d: %s, want %s", i, tag, want)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d entries followed", i, n)
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if len(audit.Files(path)) < 3 {
		t.Fatal("not rotated while followed")
	}
}
