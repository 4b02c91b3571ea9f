package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBoardListShow(t *testing.T) {
	t.Setenv("MKRT_BOARDS", t.TempDir())
	out, err := runSubcommand(t, newBoardCmd(), "list")
	if err != nil || !strings.Contains(out, "rpi5") || !strings.Contains(out, "qemu-x86_64") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runSubcommand(t, newBoardCmd(), "show", "rpi4")
	if err != nil || !strings.Contains(out, "isolcpus=3 nohz_full=3 rcu_nocbs=3 irqaffinity=0-2") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if _, err := runSubcommand(t, newBoardCmd(), "show", "nope"); err == nil {
		t.Fatal("show of an unknown board succeeded")
	}
}

func TestBoardShowUserFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MKRT_BOARDS", dir)
	b, _ := runSubcommand(t, newBoardCmd(), "show", "rpi5")
	// The printed definition loads back as a user board of another name.
	text := strings.Replace(b, "name: rpi5", "name: my-pi", 1)
	if err := os.WriteFile(filepath.Join(dir, "my-pi.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runSubcommand(t, newBoardCmd(), "show", "my-pi")
	if err != nil || !strings.Contains(out, "name: my-pi") {
		t.Fatalf("user board: %v\n%s", err, out)
	}
}

// TestBoardCheckThisHost runs the check on the real host: the exit code must
// agree with the report.
func TestBoardCheckThisHost(t *testing.T) {
	out, err := runSubcommand(t, newBoardCmd(), "check", "qemu-x86_64", "--json")
	var r struct {
		Ready bool
		Items []struct{ Status string }
	}
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		t.Fatalf("not JSON: %v\n%s", jerr, out)
	}
	var ee *exitError
	if r.Ready != (err == nil) || (err != nil && (!errors.As(err, &ee) || ee.code != 1)) {
		t.Fatalf("ready=%v but err=%v", r.Ready, err)
	}
	if len(r.Items) < 15 {
		t.Fatalf("only %d items", len(r.Items))
	}
}
