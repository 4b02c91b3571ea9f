package bridgetest

import (
	"bytes"
	"encoding/hex"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SubOptions configure a mosquitto_sub subscriber.
type SubOptions struct {
	// Version is the MQTT protocol: "mqttv311" (default) or "5".
	Version string
	// Addr is the broker's host:port (plain TCP).
	Addr               string
	ClientID           string
	Username, Password string
	// Topics are the filters, subscribed with QoS 1.
	Topics []string
}

// Sub is a running mosquitto_sub (Debian mosquitto-clients): a real MQTT
// 3.1.1 or 5 subscriber, run with -d so that the test sees every CONNECT it
// sends as well as every message it receives.
type Sub struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	done chan struct{}
	out  SyncBuffer
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: a logger's
// goroutines, a child process's stdout and stderr.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SubMessage is one message a Sub printed.
type SubMessage struct {
	Topic    string
	Retained bool
	Payload  []byte
}

const subPrefix = "MSG "

// MosquittoSub starts mosquitto_sub, waits (at most 10 s) until its
// subscription is acknowledged and stops it when the test ends. The test
// is skipped, with the reason, when mosquitto_sub is not installed.
func MosquittoSub(t testing.TB, o SubOptions) *Sub {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Skip("bridgetest: mosquitto_sub not installed (Debian package mosquitto-clients): integration test skipped")
	}
	if o.Version == "" {
		o.Version = "mqttv311"
	}
	host, port, ok := strings.Cut(o.Addr, ":")
	if !ok {
		t.Fatalf("bridgetest: mosquitto_sub: address %q is not host:port", o.Addr)
	}
	args := []string{"-d", "-V", o.Version, "-h", host, "-p", port, "-q", "1", "-F", subPrefix + "%r %t %x"}
	if o.ClientID != "" {
		args = append(args, "-i", o.ClientID)
	}
	if o.Username != "" {
		args = append(args, "-u", o.Username, "-P", o.Password)
	}
	for _, tp := range o.Topics {
		args = append(args, "-t", tp)
	}
	s := &Sub{t: t, name: "mosquitto_sub -V " + o.Version, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("bridgetest: start mosquitto_sub: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Log(), "Subscribed (mid:") {
		if !s.Running() || time.Now().After(deadline) {
			t.Fatalf("bridgetest: %s did not subscribe to %v at %s:\n%s", s.name, o.Topics, o.Addr, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// Log is everything mosquitto_sub printed so far: its debug lines and the
// messages.
func (s *Sub) Log() string { return s.out.String() }

// Running reports whether mosquitto_sub still runs: it exits when it loses
// its connection.
func (s *Sub) Running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Connects is how many CONNECT packets mosquitto_sub has sent: 1 as long
// as it never had to reconnect.
func (s *Sub) Connects() int { return strings.Count(s.Log(), " sending CONNECT") }

// Messages are the messages received so far, in order.
func (s *Sub) Messages() []SubMessage {
	var out []SubMessage
	for _, l := range strings.Split(s.Log(), "\n") {
		rest, ok := strings.CutPrefix(l, subPrefix)
		if !ok {
			continue
		}
		f := strings.SplitN(rest, " ", 3)
		if len(f) < 2 {
			continue
		}
		m := SubMessage{Retained: f[0] == "1", Topic: f[1]}
		if len(f) == 3 {
			b, err := hex.DecodeString(f[2])
			if err != nil {
				s.t.Errorf("bridgetest: %s printed a payload that is not hex: %q", s.name, l)
				continue
			}
			m.Payload = b
		}
		out = append(out, m)
	}
	return out
}

// String names the subscriber.
func (s *Sub) String() string { return s.name }

// stop ends mosquitto_sub (SIGTERM, then SIGKILL after 5 s).
func (s *Sub) stop() {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !s.Running() {
			return
		}
		syscall.Kill(-s.cmd.Process.Pid, sig)
		select {
		case <-s.done:
			return
		case <-time.After(5 * time.Second):
		}
	}
	s.t.Errorf("bridgetest: %s (pid %d) did not exit", s.name, s.cmd.Process.Pid)
}
