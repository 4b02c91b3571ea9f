package shm_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

var longRun = flag.Bool("shm.long", false, "run the two-process hammer test for 60s instead of 2s")

// The child process: the test binary re-executed with these variables set.
const (
	envRole = "MKRT_SHM_CHILD"
	envPath = "MKRT_SHM_PATH"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(child(role, os.Getenv(envPath)))
	}
	os.Exit(m.Run())
}

// The layouts of each scenario, computed identically in both processes.
const hammerTags, hammerStrings = 62, 2

func hammerParams() shm.Params  { return shmtest.Params(hammerTags, hammerStrings, 1) }
func latencyParams() shm.Params { return shmtest.Params(1, 0, 1) }
func drainParams() shm.Params {
	p := shmtest.Params(1, 0, 0)
	p.Commands = 4096
	return p
}

// pin locks the calling goroutine to its thread and the thread to cpu, when
// the machine has that cpu and the affinity call is allowed. It returns an
// undo function and what happened, for the log.
func pin(cpu int) (func(), string) {
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil || runtime.NumCPU() < 2 {
		return runtime.UnlockOSThread, fmt.Sprintf("not pinned (%d CPUs, %v)", runtime.NumCPU(), err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return runtime.UnlockOSThread, fmt.Sprintf("not pinned: sched_setaffinity: %v", err)
	}
	return func() { unix.SchedSetaffinity(0, &old); runtime.UnlockOSThread() }, fmt.Sprintf("pinned to CPU %d", cpu)
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// strs are the string values the hammer writer cycles through: a torn read
// would mix two of them.
var strs = func() [256]string {
	var s [256]string
	for i := range s {
		s[i] = fmt.Sprintf("%03d-%s", i, string(rune('a'+i%26))+fmt.Sprint(i*7919))
	}
	return s
}()

// child runs the executive side of a scenario until it gets CmdHalt, whose
// result carries the number of publishes (or commands) it made.
func child(role, path string) int {
	unpin, _ := pin(1)
	defer unpin()
	if role == "raw" {
		return rawChild(path)
	}
	params := map[string]func() shm.Params{"hammer": hammerParams, "latency": latencyParams, "drain": drainParams}[role]
	if params == nil {
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	l, err := shm.NewLayout(params())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := shm.Open(shm.File(path, 0, false))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := shm.AttachWriter(ctx, r, l, shm.WriterOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer w.Close()
	w.SetState(wire.Running, 0)
	samples := make([]tag.Sample, l.Tags())
	text := make([]string, l.Tags())
	var c wire.Command
	var count uint64
	giveUp := time.Now().Add(10 * time.Minute) // if the parent vanished without halting us
	next := monoNow()
	for gen := uint64(1); ; gen++ {
		if w.PollCommand(&c) {
			res := wire.Result{ID: c.ID, Status: wire.Applied, Cycle: gen}
			if c.Kind == wire.Halt {
				res.Old = float64(count)
				w.Reply(res)
				return 0
			}
			w.Reply(res)
			count++
			continue
		}
		switch role {
		case "hammer":
			for i := range samples {
				samples[i] = tag.Sample{Value: float64(gen*1000 + uint64(i)), Time: int64(gen), Quality: tag.Good}
			}
			for i := hammerTags; i < len(text); i++ {
				text[i] = strs[(gen+uint64(i))%256]
			}
			w.Publish(gen, samples, text)
			count++
			// Pause 0-3µs between publishes: a writer publishing back to back
			// would starve the reader's retries (the real one publishes once
			// per cycle); the short gaps keep collisions frequent.
			for until := monoNow() + int64(gen%4)*1000; monoNow() < until; {
			}
		case "latency":
			now := monoNow()
			if now < next {
				continue
			}
			samples[0] = tag.Sample{Value: float64(gen), Time: monoNow(), Quality: tag.Good}
			w.Publish(gen, samples, nil)
			next = now + 20_000 // 20µs apart: the reader is back to waiting
			count++
		}
		if gen%(1<<20) == 0 && time.Now().After(giveUp) {
			return 3
		}
	}
}

// peer is the executive child process of a two-process test.
type peer struct {
	r   *shm.Reader
	cmd *exec.Cmd
}

func startPeer(tb testing.TB, role string, p shm.Params) *peer {
	tb.Helper()
	shmtest.Skip(tb)
	exe, err := os.Executable()
	if err != nil {
		tb.Skipf("cannot re-execute the test binary: %v", err)
	}
	l := shmtest.Layout(tb, p)
	path := shmtest.File(tb, l)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envPath+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start child: %v", err)
	}
	pr := &peer{cmd: cmd}
	tb.Cleanup(func() {
		if pr.cmd.ProcessState == nil {
			pr.cmd.Process.Kill()
			pr.cmd.Wait()
		}
	})
	region := shmtest.Map(tb, path)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pr.r, err = shm.AttachReader(region, l, shm.ReaderOptions{})
		if err == nil && pr.r.Heartbeat().State == wire.Running {
			return pr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("child did not start: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// stop halts the child and returns the count it reports.
func (pr *peer) stop(tb testing.TB) uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res wire.Result
	var err error
	for {
		res, err = pr.r.Do(ctx, wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("test")})
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("halt child: %v", err)
	}
	if err := pr.cmd.Wait(); err != nil {
		tb.Fatalf("child: %v", err)
	}
	return uint64(res.Old)
}

// TestTwoProcessHammer: an executive process publishes checksummed images
// as fast as it can on one core while this process snapshots them on the
// other; no snapshot may mix two publishes.
func TestTwoProcessHammer(t *testing.T) {
	run := 2 * time.Second
	if *longRun {
		run = 60 * time.Second
	}
	unpin, how := pin(0)
	defer unpin()
	pr := startPeer(t, "hammer", hammerParams())
	var im shm.Image
	var snaps, torn, distinct, last uint64
	ctx, cancel := context.WithTimeout(context.Background(), run+30*time.Second)
	defer cancel()
	end := time.Now().Add(run)
	for i := 0; ; i++ {
		if i%1024 == 0 && time.Now().After(end) {
			break
		}
		if err := pr.r.Snapshot(ctx, &im); err != nil {
			t.Fatal(err)
		}
		snaps++
		gen := uint64(im.Samples[0].Time)
		if gen != last {
			distinct++
			last = gen
		}
		if !consistent(&im, gen) {
			torn++
			if torn < 5 {
				t.Errorf("torn snapshot at seq %d: %+v %q", im.Seq, im.Samples[:3], im.Text[hammerTags:])
			}
		}
	}
	publishes := pr.stop(t)
	t.Logf("%s; %v: %d publishes, %d snapshots (%d distinct images), %d torn", how, run, publishes, snaps, distinct, torn)
	if torn != 0 {
		t.Fatalf("%d torn snapshots", torn)
	}
	if publishes == 0 || distinct < 2 {
		t.Fatalf("the writer did not make progress (%d publishes, %d distinct)", publishes, distinct)
	}
}

func consistent(im *shm.Image, gen uint64) bool {
	if gen == 0 { // before the first publish
		return true
	}
	if im.Cycle != gen {
		return false
	}
	for i := 0; i < hammerTags; i++ {
		s := im.Samples[i]
		if s.Time != int64(gen) || s.Value != float64(gen*1000+uint64(i)) || s.Quality != tag.Good {
			return false
		}
	}
	for i := hammerTags; i < len(im.Text); i++ {
		if im.Text[i] != strs[(gen+uint64(i))%256] {
			return false
		}
	}
	return true
}

// BenchmarkPublishObserve measures how long after a publish (by an
// executive process on one core) this process on the other core observes
// it: the latency percentiles are reported as p50-ns, p99-ns and p999-ns.
func BenchmarkPublishObserve(b *testing.B) {
	unpin, how := pin(0)
	defer unpin()
	pr := startPeer(b, "latency", latencyParams())
	h := hdrhistogram.New(1, int64(time.Second), 3)
	var im shm.Image
	ctx := context.Background()
	seq := pr.r.Seq()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for spins := 0; ; spins++ {
			if s := pr.r.Seq(); s != seq && s&1 == 0 {
				break
			}
			if spins%(1<<24) == (1<<24)-1 && pr.cmd.ProcessState != nil {
				b.Fatal("child exited")
			}
		}
		if err := pr.r.Snapshot(ctx, &im); err != nil {
			b.Fatal(err)
		}
		now := monoNow()
		seq = im.Seq
		h.RecordValue(now - im.Samples[0].Time)
	}
	b.StopTimer()
	pr.stop(b)
	b.ReportMetric(float64(h.ValueAtQuantile(50)), "p50-ns")
	b.ReportMetric(float64(h.ValueAtQuantile(99)), "p99-ns")
	b.ReportMetric(float64(h.ValueAtQuantile(99.9)), "p999-ns")
	b.ReportMetric(float64(h.Max()), "max-ns")
	b.Logf("%s; %d observations", how, h.TotalCount())
}

// BenchmarkCommandRing measures sustained command throughput to an
// executive process draining the ring on the other core, results included.
func BenchmarkCommandRing(b *testing.B) {
	unpin, how := pin(0)
	defer unpin()
	pr := startPeer(b, "drain", drainParams())
	results := make([]wire.Result, 1024)
	got := 0
	cmd := wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(1), Origin: wire.NewOrigin("bench")}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; {
		if _, err := pr.r.Submit(cmd); err != nil {
			got += pr.r.Results(results)
			continue
		}
		i++
	}
	for got < b.N {
		got += pr.r.Results(results)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := pr.stop(b)
	if n != uint64(b.N) {
		b.Fatalf("executive applied %d of %d commands", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
	b.Logf("%s", how)
}

// Offsets in the reference benchmark's page: a sequence, the time it was
// stored, and a stop flag, each on its own cache line.
const rawSeq, rawTime, rawStop = 0, 64, 128

// rawChild stores the time into a plain shared page every 20µs, with
// nothing of the channel around it, until told to stop.
func rawChild(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 2
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 2
	}
	seq := (*atomic.Uint64)(unsafe.Pointer(&mem[rawSeq]))
	at := (*atomic.Int64)(unsafe.Pointer(&mem[rawTime]))
	stop := (*atomic.Uint64)(unsafe.Pointer(&mem[rawStop]))
	giveUp := time.Now().Add(10 * time.Minute)
	for next := monoNow(); stop.Load() == 0; {
		now := monoNow()
		if now < next {
			continue
		}
		at.Store(monoNow())
		seq.Add(1)
		next = now + 20_000
		if time.Now().After(giveUp) {
			return 3
		}
	}
	return 0
}

// BenchmarkRawCacheLineReference is the floor BenchmarkPublishObserve is
// measured against in the same run: the same two pinned processes passing
// a timestamp through one cache line of a shared page, with no seqlock,
// directory or image around it. On a virtual machine whose vCPUs share
// host cores, both figures are dominated by the hypervisor's scheduling.
func BenchmarkRawCacheLineReference(b *testing.B) {
	shmtest.Skip(b)
	unpin, how := pin(0)
	defer unpin()
	path := filepath.Join(b.TempDir(), "page")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	seq := (*atomic.Uint64)(unsafe.Pointer(&mem[rawSeq]))
	at := (*atomic.Int64)(unsafe.Pointer(&mem[rawTime]))
	stop := (*atomic.Uint64)(unsafe.Pointer(&mem[rawStop]))
	exe, err := os.Executable()
	if err != nil {
		b.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=raw", envPath+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stop.Store(1); cmd.Wait() }()
	h := hdrhistogram.New(1, int64(time.Second), 3)
	last := seq.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for spins := 0; ; spins++ {
			if s := seq.Load(); s != last {
				last = s
				break
			}
			if spins%(1<<24) == (1<<24)-1 && cmd.ProcessState != nil {
				b.Fatal("child exited")
			}
		}
		h.RecordValue(monoNow() - at.Load())
	}
	b.StopTimer()
	b.ReportMetric(float64(h.ValueAtQuantile(50)), "p50-ns")
	b.ReportMetric(float64(h.ValueAtQuantile(99)), "p99-ns")
	b.ReportMetric(float64(h.ValueAtQuantile(99.9)), "p999-ns")
	b.ReportMetric(float64(h.Max()), "max-ns")
	b.Logf("%s; %d observations", how, h.TotalCount())
}
