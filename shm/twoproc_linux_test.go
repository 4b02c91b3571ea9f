package shm_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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

var (
	longRun = flag.Bool("shm.long", false, "run the two-process hammer test for 60s instead of 2s")
	fifo    = flag.Bool("shm.fifo", false, "run the spinning threads of the two-process benchmarks at SCHED_FIFO (needs root), so that other load on their CPUs does not show in the figures")
)

// The child process: the test binary re-executed with these variables set:
// its role, the region's path, the probe page's path (benchmarks), the CPU
// it runs on ("-1": not pinned) and whether its spinning thread runs at
// SCHED_FIFO.
const (
	envRole  = "MKRT_SHM_CHILD"
	envPath  = "MKRT_SHM_PATH"
	envProbe = "MKRT_SHM_PROBE"
	envCPU   = "MKRT_SHM_CPU"
	envFIFO  = "MKRT_SHM_FIFO"
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

// fifoPriority is the real-time priority of the spinning threads with
// -shm.fifo: above every SCHED_OTHER task, below the kernel's threaded
// interrupts (50).
const fifoPriority = 10

// allowedCPUs are the CPUs this process may run on, read at start, before
// any benchmark pins a thread.
var allowedCPUs = func() unix.CPUSet {
	var s unix.CPUSet
	unix.SchedGetaffinity(0, &s)
	return s
}()

// placement is where the two processes of a two-process test run: the
// bridge side (the test's goroutine, locked to its thread) and the
// executive child process, each on a CPU of its own, or unpinned (-1).
type placement struct {
	bridge, exec int
	fifo         bool   // both spinning threads at SCHED_FIFO
	why          string // why not pinned
}

func (p placement) String() string {
	if p.bridge < 0 {
		return "not pinned: " + p.why
	}
	class := "SCHED_OTHER: other load on these CPUs shows in the figures (-shm.fifo keeps it off)"
	if p.fifo {
		class = fmt.Sprintf("SCHED_FIFO %d", fifoPriority)
	}
	return fmt.Sprintf("bridge side (this process) on CPU %d, executive process on CPU %d, %s", p.bridge, p.exec, class)
}

// cpuPair picks two CPUs this process may use that are not SMT siblings of
// one core (siblings share the core's caches and would flatter the figures),
// or says why there are none.
func cpuPair() (bridge, exec int, err error) {
	var cpus []int
	for c := 0; c < 8*int(unsafe.Sizeof(allowedCPUs)); c++ {
		if allowedCPUs.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		return -1, -1, fmt.Errorf("this process may use %d CPU(s) %v; two are needed to pin the processes apart", len(cpus), cpus)
	}
	for i, a := range cpus {
		for _, b := range cpus[i+1:] {
			if !siblings(a, b) {
				return a, b, nil
			}
		}
	}
	return -1, -1, fmt.Errorf("CPUs %v are SMT siblings of one core", cpus)
}

// siblings reports whether CPUs a and b are hardware threads of one core,
// as sysfs tells; false when it does not.
func siblings(a, b int) bool {
	id := func(cpu int) string {
		dir := fmt.Sprintf("/sys/devices/system/cpu/cpu%d/topology/", cpu)
		pkg, err1 := os.ReadFile(dir + "physical_package_id")
		core, err2 := os.ReadFile(dir + "core_id")
		if err1 != nil || err2 != nil {
			return fmt.Sprint("cpu", cpu)
		}
		return string(pkg) + "/" + string(core)
	}
	return id(a) == id(b)
}

// place locks the calling goroutine to its thread and pins the thread to the
// bridge CPU of a CPU pair, at SCHED_FIFO for a benchmark with -shm.fifo.
// When there is no pair, or the kernel refuses, a benchmark is skipped with
// the reason, and a test runs unpinned and logs why. The returned function
// undoes it all.
func place(tb testing.TB) (placement, func()) {
	tb.Helper()
	_, bench := tb.(*testing.B)
	runtime.LockOSThread()
	at := placement{bridge: -1, exec: -1, fifo: bench && *fifo}
	bridge, exec, err := cpuPair()
	if err == nil {
		err = setCPU(bridge)
	}
	if err == nil && at.fifo {
		if err = setFIFO(true); err != nil {
			unix.SchedSetaffinity(0, &allowedCPUs)
		}
	}
	if err != nil {
		runtime.UnlockOSThread()
		if bench {
			tb.Skipf("figures need the two processes on two CPUs of their own: %v", err)
		}
		at.why = err.Error()
		return at, func() {}
	}
	at.bridge, at.exec = bridge, exec
	return at, func() {
		if at.fifo {
			setFIFO(false)
		}
		unix.SchedSetaffinity(0, &allowedCPUs)
		runtime.UnlockOSThread()
	}
}

// setFIFO puts the calling thread in SCHED_FIFO at fifoPriority, or back
// in SCHED_OTHER. Threads and processes it starts begin in SCHED_OTHER
// (reset on fork): only the spinning threads run at SCHED_FIFO.
func setFIFO(on bool) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}
	if on {
		attr.Policy, attr.Priority, attr.Flags = unix.SCHED_FIFO, fifoPriority, unix.SCHED_FLAG_RESET_ON_FORK
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr(policy %d, priority %d): %w", attr.Policy, attr.Priority, err)
	}
	return nil
}

// setCPU pins the calling thread to cpu.
func setCPU(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity(CPU %d): %w", cpu, err)
	}
	return nil
}

// onlyCPU reports whether the thread tid may run on cpu and nowhere else.
func onlyCPU(tid, cpu int) bool {
	var set unix.CPUSet
	return unix.SchedGetaffinity(tid, &set) == nil && set.Count() == 1 && set.IsSet(cpu)
}

// startChild starts the test binary again as the executive child in role,
// on the executive CPU of at. The fork happens on this thread while it is
// pinned to that CPU, so every thread of the child inherits the mask from
// its first instruction; the child checks it (childCPU) and this side
// checks the child's main thread.
func startChild(tb testing.TB, role, path, probePath string, at placement) *exec.Cmd {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envPath+"="+path, envCPU+"="+strconv.Itoa(at.exec), envFIFO+"="+strconv.FormatBool(at.fifo), envProbe+"="+probePath)
	cmd.Stderr = os.Stderr
	if at.exec < 0 {
		err = cmd.Start()
	} else if err = setCPU(at.exec); err == nil {
		err = cmd.Start()
		if err2 := setCPU(at.bridge); err == nil {
			err = err2
		}
	}
	if err != nil {
		if cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		tb.Fatalf("start child: %v", err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if at.exec >= 0 && !onlyCPU(cmd.Process.Pid, at.exec) {
		tb.Fatalf("child pid %d is not pinned to CPU %d", cmd.Process.Pid, at.exec)
	}
	return cmd
}

// childCPU locks the child's goroutine to its thread and makes sure the
// thread runs on the CPU the parent chose (inherited at the fork), at
// SCHED_FIFO when asked.
func childCPU() error {
	cpu, err := strconv.Atoi(os.Getenv(envCPU))
	if err != nil || cpu < 0 {
		return nil
	}
	runtime.LockOSThread()
	if !onlyCPU(0, cpu) {
		if err := setCPU(cpu); err != nil {
			return err
		}
	}
	if on, _ := strconv.ParseBool(os.Getenv(envFIFO)); on {
		return setFIFO(true)
	}
	return nil
}

// monoNow is CLOCK_MONOTONIC in ns, the same clock in both processes, read
// through the vDSO by runtime.nanotime (which the runtime keeps linkable):
// about 40 ns on the reference machine, where unix.ClockGettime, a real
// system call, costs about 460 ns and would be most of what the latency
// benchmarks measure.
//
//go:linkname monoNow runtime.nanotime
func monoNow() int64

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
// result carries the number of publishes (or commands) it made. With a
// probe page it also echoes the page's pings (echoes only, in role echo).
func child(role, path string) int {
	if err := childCPU(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	var pg *probe
	if p := os.Getenv(envProbe); p != "" {
		var err error
		if pg, err = mapProbe(p); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
	}
	if role == "echo" && pg != nil {
		return pg.echoUntilStopped()
	}
	params := map[string]func() shm.Params{"hammer": hammerParams, "latency": latencyParams, "drain": drainParams}[role]
	if params == nil || role == "latency" && pg == nil {
		fmt.Fprintln(os.Stderr, "child: unknown role or no probe page:", role)
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
	var echoed int64
	giveUp := time.Now().Add(10 * time.Minute) // if the parent vanished without halting us
	next, image := monoNow(), false
	for gen := uint64(1); ; gen++ {
		if pg != nil {
			echoed = pg.echo(echoed)
		}
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
			// Every publishGap/2, by turns: the clock into the probe's stamp
			// line (the floor), or an image whose sample time is the clock.
			now := monoNow()
			if now < next {
				continue
			}
			if image {
				samples[0] = tag.Sample{Value: float64(gen), Time: monoNow(), Quality: tag.Good}
				w.Publish(gen, samples, nil)
				count++
			} else {
				pg.stamp.Store(monoNow())
			}
			image = !image
			next = now + publishGap/2
		}
		if gen%(1<<20) == 0 && time.Now().After(giveUp) {
			return 3
		}
	}
}

// publishGap is the time between two publishes (and between two floor
// stamps) in the latency benchmark: long enough that the observer is back to
// spinning when the next comes.
const publishGap = 20_000 // ns

// peer is the executive child process of a two-process test, with the probe
// page it shares with this process.
type peer struct {
	r     *shm.Reader
	cmd   *exec.Cmd
	probe *probe
}

func startPeer(tb testing.TB, role string, p shm.Params, at placement) *peer {
	tb.Helper()
	shmtest.Skip(tb)
	l := shmtest.Layout(tb, p)
	path := shmtest.File(tb, l)
	probePath, pg := newProbe(tb)
	pr := &peer{cmd: startChild(tb, role, path, probePath, at), probe: pg}
	region := shmtest.Map(tb, path)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		pr.r, err = shm.AttachReader(region, l, shm.ReaderOptions{})
		if err == nil && pr.r.Heartbeat().State == wire.Running {
			return pr
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("state %v", pr.r.Heartbeat().State)
			}
			tb.Fatalf("child pid %d did not start in 20s (%s): %v", pr.cmd.Process.Pid, at, err)
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

// progress fails tb when a loop has made no progress for 5s: the child
// died or stalled.
type progress struct {
	tb    testing.TB
	idle  int
	since int64
}

// made records one turn of the loop, which made progress or not.
func (p *progress) made(ok bool) {
	if ok {
		p.idle = 0
		return
	}
	if p.idle++; p.idle%(1<<20) != 0 {
		return
	}
	switch now := monoNow(); {
	case p.idle == 1<<20:
		p.since = now
	case now-p.since > int64(5*time.Second):
		p.tb.Fatal("the child stopped answering")
	}
}

// spinUntil spins until done holds (at most 5s).
func spinUntil(tb testing.TB, done func() bool) {
	for p := (progress{tb: tb}); !done(); {
		p.made(false)
	}
}

// TestTwoProcessHammer: an executive process publishes checksummed images
// as fast as it can on one core while this process snapshots them on the
// other; no snapshot may mix two publishes.
func TestTwoProcessHammer(t *testing.T) {
	run := 2 * time.Second
	if *longRun {
		run = 60 * time.Second
	}
	at, unpin := place(t)
	defer unpin()
	pr := startPeer(t, "hammer", hammerParams(), at)
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
	t.Logf("%s; %v: %d publishes, %d snapshots (%d distinct images), %d torn", at, run, publishes, snaps, distinct, torn)
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

// latencies is a histogram of latencies in ns.
type latencies struct{ *hdrhistogram.Histogram }

func newLatencies() latencies { return latencies{hdrhistogram.New(1, int64(time.Second), 3)} }

// report reports percentiles of the histogram divided by div, as
// <prefix>p50-ns, <prefix>p99-ns and, with tail, p999 and max.
func (h latencies) report(b *testing.B, prefix string, div float64, tail bool) {
	b.ReportMetric(float64(h.ValueAtQuantile(50))/div, prefix+"p50-ns")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/div, prefix+"p99-ns")
	if tail {
		b.ReportMetric(float64(h.ValueAtQuantile(99.9))/div, prefix+"p999-ns")
		b.ReportMetric(float64(h.Max())/div, prefix+"max-ns")
	}
}

// BenchmarkPublishObserve is the channel's one-way latency next to its
// floor, with this process (the bridge side) and an executive child process
// each pinned to a CPU of its own (the log names them; it skips, saying
// why, where there are not two). On a machine that does anything else, run
// it with -shm.fifo (go test ./shm/ -run '^$' -bench . -args -shm.fifo): a
// spinning thread that shares its CPU measures the scheduler.
//
//   - floor-roundtrip: this side stores a number into one cache line of a
//     shared page, the child spins on it and echoes it into another; half
//     the round trip, timed by this side's clock alone, is p50-ns and
//     p99-ns (rtt-p50-ns and rtt-p99-ns are the whole round trip);
//   - channel: every 10µs the child stores, by turns, the clock into one
//     cache line of the shared page (the floor) or publishes a one-tag
//     image (Writer.Publish) whose sample time is the clock; this side
//     spins on both, and records now − the stored time: for the line as
//     floor-p50-ns and floor-p99-ns, for the image (seen moving in
//     Reader.Seq, then copied with Reader.Snapshot) as p50-ns, p99-ns,
//     p999-ns and max-ns. Both include one clock read (about 40ns); taking
//     them by turns in one run exposes both to the same conditions.
//     missed/op counts images published over before this side saw them.
//
// Both processes spin: this is the channel's distance from the hardware,
// not the bridge's, which scans on a ticker (see the package doc).
func BenchmarkPublishObserve(b *testing.B) {
	b.Run("floor-roundtrip", func(b *testing.B) {
		at, unpin := place(b)
		defer unpin()
		path, pg := newProbe(b)
		cmd := startChild(b, "echo", "", path, at)
		rtt := newLatencies()
		b.ResetTimer()
		pg.roundTrips(b, b.N, rtt)
		b.StopTimer()
		pg.stop.Store(1)
		cmd.Wait()
		rtt.report(b, "", 2, true)
		rtt.report(b, "rtt-", 1, false)
		b.Logf("%s; %d round trips", at, rtt.TotalCount())
	})
	b.Run("channel", func(b *testing.B) {
		at, unpin := place(b)
		defer unpin()
		pr := startPeer(b, "latency", latencyParams(), at)
		floor, channel := newLatencies(), newLatencies()
		var im shm.Image
		var missed uint64
		ctx := context.Background()
		seq, last := pr.r.Seq(), pr.probe.stamp.Load()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var stamp int64
			var s uint64
			spinUntil(b, func() bool {
				stamp, s = pr.probe.stamp.Load(), pr.r.Seq()
				return stamp != last || s != seq && s&1 == 0
			})
			if stamp != last {
				floor.RecordValue(monoNow() - stamp)
				last = stamp
				continue
			}
			if err := pr.r.Snapshot(ctx, &im); err != nil {
				b.Fatal(err)
			}
			channel.RecordValue(monoNow() - im.Samples[0].Time)
			missed += (im.Seq-seq)/2 - 1
			seq = im.Seq
		}
		b.StopTimer()
		pr.stop(b)
		floor.report(b, "floor-", 1, false)
		channel.report(b, "", 1, true)
		b.ReportMetric(float64(missed)/float64(max(1, channel.TotalCount())), "missed/op")
		b.Logf("%s; %d floor and %d image observations", at, floor.TotalCount(), channel.TotalCount())
	})
}

// BenchmarkCommandRing measures sustained command throughput, results
// included, between this process (the bridge side: Submit, and Results
// whenever the ring is full) and an executive child process (PollCommand
// and Reply as fast as it can), each pinned to a CPU of its own, and
// reports it as commands/s. floor-rtt-ns is the median round trip of a
// cache line between the two processes, taken just before: the throughput
// follows it (see BenchmarkPublishObserve).
func BenchmarkCommandRing(b *testing.B) {
	at, unpin := place(b)
	defer unpin()
	pr := startPeer(b, "drain", drainParams(), at)
	rtt := newLatencies()
	pr.probe.roundTrips(b, 10000, rtt)
	results := make([]wire.Result, 1024)
	got := 0
	cmd := wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(1), Origin: wire.NewOrigin("bench")}
	stall := progress{tb: b}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; {
		if _, err := pr.r.Submit(cmd); err == nil {
			i++
			stall.made(true)
			continue
		}
		n := pr.r.Results(results)
		got += n
		stall.made(n > 0)
	}
	for got < b.N {
		n := pr.r.Results(results)
		got += n
		stall.made(n > 0)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := pr.stop(b)
	if n != uint64(b.N) {
		b.Fatalf("executive applied %d of %d commands", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
	b.ReportMetric(float64(rtt.ValueAtQuantile(50)), "floor-rtt-ns")
	b.Logf("%s", at)
}

// The probe page's words, each on a cache line of its own.
const probeStamp, probePing, probePong, probeStop = 0, 64, 128, 192

// probe is a page beside the region that both processes map: the floor the
// channel is measured against, one cache line at a time, with nothing of
// the channel around it.
type probe struct {
	mem                     []byte
	stamp, ping, pong, stop *atomic.Int64
}

// newProbe makes a zeroed probe page in a temporary directory and maps it
// for the rest of tb.
func newProbe(tb testing.TB) (string, *probe) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "probe")
	if err := os.WriteFile(path, make([]byte, pageSize), 0o600); err != nil {
		tb.Fatal(err)
	}
	pg, err := mapProbe(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(pg.mem) })
	return path, pg
}

const pageSize = 4096

func mapProbe(path string) (*probe, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	word := func(off int) *atomic.Int64 { return (*atomic.Int64)(unsafe.Pointer(&mem[off])) }
	return &probe{mem: mem, stamp: word(probeStamp), ping: word(probePing), pong: word(probePong), stop: word(probeStop)}, nil
}

// echo copies a new ping into pong; last is the ping echoed before.
func (pg *probe) echo(last int64) int64 {
	if p := pg.ping.Load(); p != last {
		pg.pong.Store(p)
		return p
	}
	return last
}

// echoUntilStopped is the child of floor-roundtrip: it echoes and nothing
// else until told to stop.
func (pg *probe) echoUntilStopped() int {
	giveUp := monoNow() + int64(10*time.Minute) // if the parent vanished without stopping us
	var last int64
	for n := 0; pg.stop.Load() == 0; n++ {
		last = pg.echo(last)
		if n%(1<<20) == 0 && monoNow() > giveUp {
			return 3
		}
	}
	return 0
}

// roundTrips times n round trips of a cache line to the child and back.
func (pg *probe) roundTrips(tb testing.TB, n int, rtt latencies) {
	for i, ping := 0, pg.pong.Load(); i < n; i++ {
		ping++
		start := monoNow()
		pg.ping.Store(ping)
		spinUntil(tb, func() bool { return pg.pong.Load() == ping })
		rtt.RecordValue(monoNow() - start)
	}
}
