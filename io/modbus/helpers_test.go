package modbus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm/tag"
)

var orders = []configs.Order{configs.ABCD, configs.CDAB, configs.BADC, configs.DCBA}

// recorder serves a sim.Bank and records every request as "fcN addr+qty".
type recorder struct {
	*sim.Bank
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) log(write bool, area string, addr, qty uint16) {
	op := "read"
	if write {
		op = "write"
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, fmt.Sprintf("%s %s %d+%d", op, area, addr, qty))
	r.mu.Unlock()
}

func (r *recorder) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	r.log(req.IsWrite, "coil", req.Addr, req.Quantity)
	return r.Bank.HandleCoils(req)
}

func (r *recorder) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	r.log(false, "discrete", req.Addr, req.Quantity)
	return r.Bank.HandleDiscreteInputs(req)
}

func (r *recorder) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	r.log(req.IsWrite, "holding", req.Addr, req.Quantity)
	return r.Bank.HandleHoldingRegisters(req)
}

func (r *recorder) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	r.log(false, "input", req.Addr, req.Quantity)
	return r.Bank.HandleInputRegisters(req)
}

// take returns and forgets the recorded requests.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// serveBank serves a bank of n entries per area on 127.0.0.1:0.
func serveBank(t testing.TB, n int) (*recorder, string) {
	t.Helper()
	rec := &recorder{Bank: sim.NewBank(n, n, n, n)}
	srv, err := sim.Serve(context.Background(), rec, sim.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return rec, srv.Addr()
}

func ptr[T any](v T) *T { return &v }

// newTable numbers the tags of devs.
func newTable(t testing.TB, devs ...configs.Device) *tag.Table {
	t.Helper()
	tab, err := (&configs.Config{Devices: devs}).TagTable()
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// startScanner builds and starts a scanner for dev, stopped at cleanup.
func startScanner(t testing.TB, dev configs.Device, tab *tag.Table, opts ...Option) *Scanner {
	t.Helper()
	s, err := NewScanner(dev, tab, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// waitFor calls Latest into tab until cond holds, failing after 10 s.
func waitFor(t testing.TB, s *Scanner, tab *tag.Table, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.Latest(tab.Samples, tab.Text)
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within 10s; stats %+v", what, s.Stats())
}

// sample is the named tag's sample.
func sample(tab *tag.Table, name string) tag.Sample {
	id, _ := tab.Lookup(name)
	return tab.Samples[id]
}

func allGood(tab *tag.Table, names ...string) func() bool {
	return func() bool {
		for _, n := range names {
			if sample(tab, n).Quality != tag.Good {
				return false
			}
		}
		return true
	}
}
