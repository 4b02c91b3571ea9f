package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// cycling is a controller whose partition's cycle counter moves with every
// status request.
type cycling struct {
	*supervisortest.Controller
	mu    sync.Mutex
	cycle uint64
}

func (c *cycling) Status() supervisor.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cycle++
	return supervisor.Status{State: supervisor.Running, Cycle: c.cycle}
}

type fakeDog struct {
	mu               sync.Mutex
	fed              int
	disarmed, closed bool
}

func (d *fakeDog) Keepalive() error { d.mu.Lock(); d.fed++; d.mu.Unlock(); return nil }
func (d *fakeDog) Disarm() error    { d.mu.Lock(); d.disarmed = true; d.mu.Unlock(); return nil }
func (d *fakeDog) Close() error     { d.mu.Lock(); d.closed = true; d.mu.Unlock(); return nil }

// mkrt run --host-watchdog feeds the host's watchdog while its control
// socket answers and the partition cycles, and disarms it on a clean stop.
func TestHostWatchdogFedWhileThePartitionCycles(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	srv, err := control.Listen(sock, &cycling{Controller: &supervisortest.Controller{}}, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	go srv.Serve(sctx)
	dog := &fakeDog{}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	feedHostWatchdog(ctx, sock, slog.New(slog.DiscardHandler), func() (pid1.Watchdog, error) { return dog, nil })
	if dog.fed < 2 || !dog.disarmed || dog.closed {
		t.Fatalf("watchdog fed %d times, disarmed %v, closed without disarm %v", dog.fed, dog.disarmed, dog.closed)
	}
}
