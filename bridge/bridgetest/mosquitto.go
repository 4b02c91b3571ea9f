package bridgetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MosquittoOptions configures a test broker.
type MosquittoOptions struct {
	// TLS files; when CertFile is set the listener speaks TLS only.
	CAFile, CertFile, KeyFile string
	// RequireCert makes clients present a certificate signed by CAFile.
	RequireCert bool
	// Persist keeps sessions and queued messages across Shutdown/Start.
	Persist bool
	// Extra lines appended to mosquitto.conf.
	Extra []string
}

// Broker is a mosquitto process serving one loopback listener.
type Broker struct {
	t    testing.TB
	Port int
	conf string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	bin  string
}

// URL is the broker's address for paho: tcp://127.0.0.1:PORT (ssl:// with TLS).
func (b *Broker) URL(tls bool) string {
	scheme := "tcp"
	if tls {
		scheme = "ssl"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.Port)
}

// Addr is 127.0.0.1:PORT.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)) }

// Mosquitto starts mosquitto on a free loopback port with anonymous access
// and stops it when the test ends. The test is skipped, with the reason,
// when mosquitto is not installed.
func Mosquitto(t testing.TB) *Broker { return MosquittoWith(t, MosquittoOptions{}) }

// MosquittoWith is Mosquitto with TLS or extra configuration.
func MosquittoWith(t testing.TB, o MosquittoOptions) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mosquitto"); e == nil {
			bin = "/usr/sbin/mosquitto"
		} else {
			t.Skip("bridgetest: mosquitto not installed (Debian package mosquitto): integration test skipped")
		}
	}
	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\nset_tcp_nodelay true\n", port)
	if os.Geteuid() == 0 {
		// as root mosquitto would switch to its own user, which cannot read the test's temp dir
		text += "user root\n"
	}
	if o.Persist {
		text = strings.Replace(text, "persistence false", "persistence true\nqueue_qos0_messages true\npersistence_location "+dir+"/", 1)
	}
	if o.CertFile != "" {
		text += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n", o.CAFile, o.CertFile, o.KeyFile)
		if o.RequireCert {
			text += "require_certificate true\n"
		}
	}
	for _, l := range o.Extra {
		text += l + "\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatalf("bridgetest: %v", err)
	}
	b := &Broker{t: t, Port: port, conf: conf, log: filepath.Join(dir, "mosquitto.log")}
	b.bin = bin
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start (re)starts the broker on its port and waits until it accepts
// connections.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return
	}
	lf, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatalf("bridgetest: %v", err)
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		b.t.Fatalf("bridgetest: start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	b.cmd, b.done = cmd, done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{Timeout: 200 * time.Millisecond}).DialContext(ctx, "tcp", b.Addr())
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			out, _ := os.ReadFile(b.log)
			b.t.Fatalf("bridgetest: mosquitto exited at start:\n%s", out)
		case <-ctx.Done():
			b.t.Fatalf("bridgetest: mosquitto not accepting on %s: %v", b.Addr(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the broker (SIGKILL, as a crash or a network cut would look).
func (b *Broker) Stop() { b.signal(syscall.SIGKILL) }

// Shutdown stops the broker cleanly (SIGTERM): with Persist it saves its
// sessions and queued messages first.
func (b *Broker) Shutdown() { b.signal(syscall.SIGTERM) }

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	syscall.Kill(-b.cmd.Process.Pid, sig)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
	}
	b.cmd = nil
}

// Log returns the broker's log so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(b.log)
	return string(out)
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bridgetest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
