package load

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseKind(t *testing.T) {
	for _, k := range Kinds() {
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Errorf("%s: %v %v", k, got, err)
		}
	}
	if _, err := ParseKind("disk"); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Start(context.Background(), "disk", Options{}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Start unknown: %v", err)
	}
}

func TestIdle(t *testing.T) {
	l, err := Start(context.Background(), Idle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.String() != "idle" || l.Stop() != nil || l.Stop() != nil {
		t.Fatal("idle load misbehaves")
	}
	<-l.Done()
}

func TestStressArgs(t *testing.T) {
	o := Options{Workers: 2, CPUs: []int{0, 1}, Duration: 1500 * time.Millisecond}.withDefaults()
	got := strings.Join(stressArgs(IO, o, "/tmp/x"), " ")
	want := "--hdd 2 --hdd-bytes 64M --iomix 2 --iomix-bytes 64M --temp-path /tmp/x --timeout 2s --taskset 0,1 --quiet"
	if got != want {
		t.Fatalf("io args\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(stressArgs(Memory, Options{Workers: 1, VMBytes: "8M"}, ""), " "); got != "--vm 1 --vm-bytes 8M --timeout 0 --quiet" {
		t.Fatalf("memory args: %s", got)
	}
}

func TestStressNGMissingNamesThePackage(t *testing.T) {
	_, err := Start(context.Background(), CPU, Options{StressNG: filepath.Join(t.TempDir(), "stress-ng")})
	if runtime.GOOS != "linux" {
		t.Skip("stress-ng loads are Linux-only")
	}
	if !errors.Is(err, ErrToolMissing) || !strings.Contains(err.Error(), "apt-get install stress-ng") {
		t.Fatalf("err = %v", err)
	}
}

// groupMembers lists the live processes of process group pgid from /proc.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after "(comm)": state ppid pgrp ...
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func needStressNG(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("skipping: stress-ng loads need Linux")
	}
	if _, err := exec.LookPath("stress-ng"); err != nil {
		t.Skip("skipping: stress-ng not installed (Debian package stress-ng)")
	}
}

// TestStressLoadsLeaveNothingBehind starts each stress-ng load for real,
// checks that workers run in the load's own process group, stops it and
// checks that no process of the group is left.
func TestStressLoadsLeaveNothingBehind(t *testing.T) {
	needStressNG(t)
	for _, k := range []Kind{CPU, Memory, IO} {
		t.Run(string(k), func(t *testing.T) {
			dir := t.TempDir()
			l, err := Start(context.Background(), k, Options{Workers: 1, VMBytes: "16M", IOBytes: "8M", Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			pgid := l.PGID()
			// stress-ng forks its workers after start: wait for leader + a worker.
			if !waitFor(10*time.Second, func() bool { return len(groupMembers(t, pgid)) >= 2 }) {
				l.Stop()
				t.Fatalf("no stress-ng worker appeared in group %d", pgid)
			}
			if pgid == os.Getpid() {
				t.Fatal("load shares the test's process group")
			}
			if err := l.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if left := groupMembers(t, pgid); len(left) > 0 {
				t.Fatalf("processes left in group %d: %v", pgid, left)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("io temp dir left behind: %v", ents)
			}
			if l.Stop() != nil {
				t.Fatal("second Stop failed")
			}
		})
	}
}

func TestStressLoadEndsWithContext(t *testing.T) {
	needStressNG(t)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Start(ctx, CPU, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-l.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("load outlived its context")
	}
	l.Stop()
	if left := groupMembers(t, l.pgid); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
}

func TestStressLoadDuration(t *testing.T) {
	needStressNG(t)
	l, err := Start(context.Background(), CPU, Options{Workers: 1, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	select {
	case <-l.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("stress-ng ignored --timeout")
	}
	if err := l.Stop(); err != nil {
		t.Fatalf("a load that ran its time is not an error: %v", err)
	}
}

func TestNetworkLoad(t *testing.T) {
	l, err := Start(context.Background(), Network, Options{Workers: 2, Rate: 4000, PacketSize: 200})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { p, _ := l.NetworkStats(); return p > 50 }) {
		l.Stop()
		t.Fatal("network load sent nothing")
	}
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Stop returned before the senders ended")
	}
	p, b := l.NetworkStats()
	if b != p*200 {
		t.Fatalf("bytes %d for %d packets of 200", b, p)
	}
}

func TestNetworkLoadIsBounded(t *testing.T) {
	l, err := Start(context.Background(), Network, Options{Workers: 1, Rate: 1000, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("network load ignored its duration")
	}
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	// The rate cap bounds the count; the slack covers a late final tick.
	if p, _ := l.NetworkStats(); p > 1000 {
		t.Fatalf("%d packets in 100ms at 1000/s", p)
	}
}
