package vm

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

// qmpServer plays QEMU's side of the event socket: the greeting, the
// capabilities answer, then the events it is given; closing it is QEMU
// closing the socket as it exits.
type qmpServer struct {
	l    net.Listener
	conn chan net.Conn
}

func newQMPServer(t *testing.T, path string) *qmpServer {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &qmpServer{l: l, conn: make(chan net.Conn, 1)}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(`{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}` + "\n"))
		bufio.NewReader(c).ReadBytes('\n') // qmp_capabilities
		c.Write([]byte(`{"return": {}}` + "\n"))
		s.conn <- c
	}()
	t.Cleanup(func() { l.Close() })
	return s
}

// send writes events once the backend is connected.
func (s *qmpServer) send(t *testing.T, events ...string) net.Conn {
	t.Helper()
	select {
	case c := <-s.conn:
		for _, e := range events {
			if _, err := c.Write([]byte(e + "\n")); err != nil {
				t.Fatal(err)
			}
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the backend did not connect to the event socket")
		return nil
	}
}

// stubQEMU is a stand-in for QEMU that runs until the file exit exists,
// then exits 0.
func stubQEMU(t *testing.T) (bin, exit string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no /bin/sh for the stand-in QEMU")
	}
	dir := t.TempDir()
	bin, exit = filepath.Join(dir, "qemu"), filepath.Join(dir, "exit")
	script := "#!/bin/sh\nwhile [ ! -e " + exit + " ]; do sleep 0.05; done\nexit 0\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, exit
}

// A fired watchdog ends the run at once, while QEMU (holding the paused
// guest) still runs; the stop then does not ask the gone executive to
// halt but quits QEMU.
func TestWatchdogEventEndsTheRun(t *testing.T) {
	bin, _ := stubQEMU(t)
	dir := t.TempDir()
	halted := false
	v := New(Options{Name: "wd", RunDir: dir, Halt: func(context.Context) error { halted = true; return nil },
		QEMU: Config{QEMU: bin, Kernel: "/k", Initrd: "/i", Accel: "tcg"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := newQMPServer(t, filepath.Join(dir, "mkrt-wd.events"))
	at := time.Now()
	srv.send(t, `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "WATCHDOG", "data": {"action": "pause"}}`,
		`{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "STOP"}`)
	e, err := v.Wait(ctx)
	if err != nil || e.Signal != SignalWatchdog || e.Code != -1 || !e.Restartable() {
		t.Fatalf("run ended %+v, %v; want %q", e, err, SignalWatchdog)
	}
	t.Logf("run ended %v after the event", time.Since(at))
	if v.Info().PID == 0 {
		t.Fatal("QEMU ended with the watchdog; it must hold the paused guest until the stop")
	}
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	if err := v.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if halted {
		t.Error("the stop asked the executive of a fired guest to halt")
	}
	if v.Info().PID != 0 {
		t.Error("QEMU still runs after the stop")
	}
	if e, _ := v.Wait(ctx); e.Signal != SignalWatchdog {
		t.Errorf("after the stop the run reads %v, want the watchdog still", e)
	}
}

// A guest that resets itself (a kernel panic with panic=-1) ends QEMU
// under -no-reboot with status 0, like a power-off; its SHUTDOWN event
// tells the two apart.
func TestGuestResetEndsTheRun(t *testing.T) {
	for _, tc := range []struct {
		reason string
		want   supervisor.Exit
	}{
		{"guest-reset", supervisor.Exit{Code: -1, Signal: SignalGuestReset}},
		{"guest-shutdown", supervisor.Exit{Code: 0}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			bin, exit := stubQEMU(t)
			dir := t.TempDir()
			v := New(Options{Name: "rs", RunDir: dir, QEMU: Config{QEMU: bin, Kernel: "/k", Initrd: "/i", Accel: "tcg"}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := v.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer v.Stop(ctx)
			srv := newQMPServer(t, filepath.Join(dir, "mkrt-rs.events"))
			c := srv.send(t, `{"event": "SHUTDOWN", "data": {"guest": true, "reason": "`+tc.reason+`"}}`)
			c.Close()
			if err := os.WriteFile(exit, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := v.Wait(ctx)
			if err != nil || e.Code != tc.want.Code || e.Signal != tc.want.Signal {
				t.Fatalf("run ended %+v, %v; want %+v", e, err, tc.want)
			}
		})
	}
}
