package modbus

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/modbustest"
	"github.com/mkrt/mkrt/shm/tag"
)

// buildC compiles testdata/<name>.c against libmodbus into dir.
func buildC(b testing.TB, dir, name string) string {
	b.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		b.Skip("skipping: no C compiler (cc)")
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libmodbus").Output()
	if err != nil {
		b.Skip("skipping: libmodbus not found by pkg-config (Debian package libmodbus-dev)")
	}
	out := filepath.Join(dir, name)
	args := append([]string{"-O2", "-o", out, filepath.Join("testdata", name+".c")}, strings.Fields(string(flags))...)
	if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		b.Fatalf("cc %s: %v\n%s", name, err, msg)
	}
	return out
}

// startCServer runs the libmodbus server and waits for it to listen.
func startCServer(b *testing.B, bin string) string {
	b.Helper()
	port := freePort(b)
	cmd := exec.Command(bin, strconv.Itoa(port))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("libmodbus server did not start: %q %v", line, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// runCClient runs the libmodbus client for n requests and returns its mean
// ns per request.
func runCClient(b *testing.B, cli, addr string, n int) float64 {
	b.Helper()
	out, err := exec.Command(cli, strings.TrimPrefix(addr, "127.0.0.1:"), strconv.Itoa(n)).Output()
	if err != nil {
		b.Fatalf("libmodbus client: %v", err)
	}
	ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("libmodbus client output %q", out)
	}
	return ns
}

func holding100(addr string) configs.Device {
	dev := tcpDevice("bench", addr)
	for i := 0; i < 100; i++ {
		dev.Tags = append(dev.Tags, configs.IOTag{Name: fmt.Sprint("r", i), Area: configs.AreaHolding, Address: i, Access: tag.Read})
	}
	return dev
}

// BenchmarkPollThroughput reads 100 holding registers back to back from a
// libmodbus server, with a Scanner's full poll path (request, checks,
// decoding of 100 tags, hand-off) and then with a C client on libmodbus
// doing the same requests against the same server. Metrics: req/s of each
// and speedup = libmodbus ns/req / Go ns/req (>= 1: the Go driver is at
// least as fast).
func BenchmarkPollThroughput(b *testing.B) {
	dir := b.TempDir()
	srv := buildC(b, dir, "server")
	cli := buildC(b, dir, "client")
	addr := startCServer(b, srv)
	dev := holding100(addr)
	tab := newTable(b, dev)
	s, err := NewScanner(dev, tab)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.scan(ctx); err != nil {
		b.Fatal(err)
	}
	if len(s.plan.reads) != 1 {
		b.Fatalf("%d requests per poll, want 1", len(s.plan.reads))
	}
	// The machine is shared and its load changes by the second, so the two
	// clients take turns: ten rounds, each of b.N/10 requests per client.
	const rounds = 10
	per := max(b.N/rounds, 1)
	var goTotal time.Duration
	var cTotal float64
	b.ReportAllocs()
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		b.StopTimer()
		s.disconnect()
		cTotal += runCClient(b, cli, addr, per) * float64(per)
		if err := s.scan(ctx); err != nil { // reconnect outside the timing
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for i := 0; i < per; i++ {
			if err := s.scan(ctx); err != nil {
				b.Fatal(err)
			}
		}
		goTotal += time.Since(start)
	}
	b.StopTimer()
	goNs := float64(goTotal.Nanoseconds()) / float64(rounds*per)
	cNs := cTotal / float64(rounds*per)
	b.ReportMetric(1e9/goNs, "go-req/s")
	b.ReportMetric(1e9/cNs, "libmodbus-req/s")
	b.ReportMetric(cNs/goNs, "speedup")
}

// BenchmarkScanP99DeadNeighbour polls a live device (libmodbus server, 100
// registers) every millisecond for b.N polls, alone and next to a device
// that never answers (a server that accepts and stays silent, 20 ms
// timeout, retried without pause). Metrics: p50 and p99 scan time of the
// live device in microseconds; the two sub-benchmarks' p99 should match.
func BenchmarkScanP99DeadNeighbour(b *testing.B) {
	dir := b.TempDir()
	addr := startCServer(b, buildC(b, dir, "server"))
	for _, withDead := range []bool{false, true} {
		name := "alone"
		if withDead {
			name = "dead-neighbour"
		}
		b.Run(name, func(b *testing.B) {
			live := holding100(addr)
			live.Poll = configs.Duration(time.Millisecond)
			devs := []configs.Device{live}
			if withDead {
				silent, err := modbustest.NewRawServer(func([]byte) modbustest.Reply { return modbustest.Reply{} })
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { silent.Close() })
				dead := tcpDevice("dead", silent.Addr(), configs.IOTag{Name: "d", Area: configs.AreaHolding, Address: 0})
				dead.Timeout, dead.Retries = configs.Duration(20*time.Millisecond), 3
				devs = append(devs, dead)
			}
			tab := newTable(b, devs...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var scanners []*Scanner
			for _, d := range devs {
				s, err := NewScanner(d, tab, WithBackoff(time.Microsecond, time.Microsecond))
				if err != nil {
					b.Fatal(err)
				}
				scanners = append(scanners, s)
			}
			b.ResetTimer()
			for _, s := range scanners {
				if err := s.Start(ctx); err != nil {
					b.Fatal(err)
				}
				defer s.Stop()
			}
			for scanners[0].Stats().Polls < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			st := scanners[0].Stats()
			b.ReportMetric(float64(st.ScanTime.ValueAtQuantile(50)), "p50-scan-us")
			b.ReportMetric(float64(st.ScanTime.ValueAtQuantile(99)), "p99-scan-us")
			if withDead {
				b.ReportMetric(float64(scanners[1].Stats().Errors), "dead-errors")
			}
		})
	}
}
