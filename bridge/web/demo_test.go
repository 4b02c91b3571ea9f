package web_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/web"
)

// TestBrowserDemo is browse against the real tank demo: `mkrt sim tank`
// and `mkrt run` of the demo's config (free ports, its own state), the
// executive on the process backend. The writer raises level_sp to 2.9 m, so
// the level climbs past the high alarm's 2.6 m.
//
// The partition takes CPU 1 (make test runs one package at a time); it
// runs as root with chromium installed, and not with -short.
func TestBrowserDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("web: the HMI against the real tank demo is skipped with -short (it takes CPU 1 for the partition)")
	}
	if os.Geteuid() != 0 {
		t.Skip("web: the tank demo's process backend needs root: HMI test against the real demo skipped")
	}
	exe := chromium(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "mkrt")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mkrt/mkrt/cmd/mkrt").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mkrt: %v\n%s", err, out)
	}
	cfg, _ := tankDemo(t)
	text, err := os.ReadFile("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r [3]byte
	rand.Read(r[:])
	name := "hmi-" + hex.EncodeToString(r[:])
	simAddr := fmt.Sprintf("127.0.0.1:%d", bridgetest.FreePort(t))
	s := string(text)
	for _, rp := range [][2]string{
		{"name: tank-level", "name: " + name},
		{"address: 127.0.0.1:15020", "address: " + simAddr},
		{"listen: 127.0.0.1:11883", "listen: " + cfg.Bridge.MQTT.Listen},
		{"listen: 127.0.0.1:15021", "listen: " + cfg.Bridge.Modbus.Listen},
		{"listen: 127.0.0.1:9102", "listen: " + cfg.Bridge.Metrics.Listen},
		{"listen: 127.0.0.1:18080", "listen: " + cfg.Bridge.Web.Listen + "\n    trend_every: 200ms"},
		{"overruns: 3", "overruns: 10"}, // a shared machine's first cycles may overrun
		{"  standby_cpus: \"0\"\n", ""},
	} {
		if strings.Count(s, rp[0]) != 1 {
			t.Fatalf("tank-level.yaml: %q occurs %d times, want once", rp[0], strings.Count(s, rp[0]))
		}
		s = strings.Replace(s, rp[0], rp[1], 1)
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	start(t, "sim", bin, "sim", "tank", "--speed", "60", "--listen", simAddr)
	out := start(t, "run", bin, "run", path, "--state-dir", state, "--socket", filepath.Join(dir, "ctl.sock"))
	url := web.URL(cfg.Bridge.Web.Listen, false)
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "web HMI: "+url) {
		if time.Now().After(deadline) {
			t.Fatalf("mkrt run printed no \"web HMI: %s\" line within 90s:\n%s", url, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	browse(t, exe, hmi{url: url, audit: filepath.Join(state, "audit.jsonl"), out: artifacts(t), setpoint: "2.9", alarmWithin: 90 * time.Second})
}

// output collects a process's output.
type output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// start runs bin with args until the test ends (SIGINT, then the process
// group killed after 30s) and collects its output.
func start(t *testing.T, what, bin string, args ...string) *output {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	out := &output{}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.mu.Lock()
			out.b.WriteString(sc.Text() + "\n")
			out.mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("mkrt %s output:\n%s", what, out.String())
		}
	})
	return out
}
