package sim

import (
	"log/slog"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"
)

// The comm-loss watchdog every simulator serves, at the same addresses on
// every model, modelled on remote-I/O couplers (a WAGO 750-352 keeps its
// watchdog time in 100 ms steps at holding 0x1000). See the package doc.
const (
	// WatchdogTimeoutRegister (holding) is the timeout in WatchdogUnit
	// steps; 0, the default, turns the watchdog off.
	WatchdogTimeoutRegister = 4096
	// WatchdogKeepAliveRegister (holding) restarts the timeout on every
	// write, whatever the value; it reads back the last value written.
	WatchdogKeepAliveRegister = 4097
	// WatchdogCommLost (discrete input) is on while the watchdog has expired.
	WatchdogCommLost = 4096
	// WatchdogTrips (input register) counts the expiries, wrapping at 65536.
	WatchdogTrips = 4096
	// WatchdogUnit is the step of the timeout register.
	WatchdogUnit = 100 * time.Millisecond
)

// WatchdogState is a simulator's watchdog as its registers show it.
type WatchdogState struct {
	Timeout   time.Duration // 0: off
	KeepAlive uint16        // the last keep-alive value written
	CommLost  bool
	Trips     uint16
}

// watchdog is a simulated device's comm-loss watchdog: armed by a non-zero
// timeout, restarted by every keep-alive, it drives the model's outputs to
// their safe values when the timeout passes without one, and then refuses
// writes to anything but its own registers until the next keep-alive.
type watchdog struct {
	safe func() // drives the outputs to their safe values; locks the bank
	log  *slog.Logger

	mu       sync.Mutex // held across the writes it refuses or lets through; taken before the bank's lock
	state    WatchdogState
	deadline time.Time
	timer    *time.Timer
	closed   bool
}

func newWatchdog(safe func(), log *slog.Logger) *watchdog {
	w := &watchdog{safe: safe, log: log}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	return w
}

// restart runs the timeout from now; w.mu is held.
func (w *watchdog) restart() {
	if w.closed || w.state.Timeout == 0 {
		w.timer.Stop()
		w.state.CommLost = false
		return
	}
	if w.state.CommLost {
		w.log.Info("sim: watchdog: keep-alive again; outputs stay at their safe values until written")
	}
	w.state.CommLost = false
	w.deadline = time.Now().Add(w.state.Timeout)
	w.timer.Reset(w.state.Timeout)
}

// expire is the timer's function.
func (w *watchdog) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A restart moved the deadline after this run was scheduled.
	if w.closed || w.state.Timeout == 0 || w.state.CommLost || time.Now().Before(w.deadline) {
		return
	}
	w.state.CommLost = true
	w.state.Trips++
	w.safe()
	w.log.Info("sim: watchdog expired: communication lost, outputs driven to their safe values", "timeout", w.state.Timeout)
}

// write handles a write to the watchdog's holding registers.
func (w *watchdog) write(addr int, v uint16) {
	switch addr {
	case WatchdogTimeoutRegister:
		w.state.Timeout = time.Duration(v) * WatchdogUnit
	case WatchdogKeepAliveRegister:
		w.state.KeepAlive = v
	}
	w.restart()
}

func (w *watchdog) holding(addr int) uint16 {
	if addr == WatchdogTimeoutRegister {
		return uint16(w.state.Timeout / WatchdogUnit)
	}
	return w.state.KeepAlive
}

func (w *watchdog) snapshot() WatchdogState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

func (w *watchdog) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.timer.Stop()
}

// device is a model's bank served with its watchdog: requests within the
// watchdog's addresses go to the watchdog, all others to the bank, and
// while communication is lost writes to the bank are refused with
// exception 4 (server device failure), as a coupler whose watchdog expired
// answers until its watchdog is restarted.
type device struct {
	bank *Bank
	wd   *watchdog
}

// in reports whether addr+qty lies within the n watchdog addresses at base.
func in(addr, qty uint16, base, n int) bool {
	return qty > 0 && int(addr) >= base && int(addr)+int(qty) <= base+n
}

// refuse is the error of a write while communication is lost; w.mu is held.
func (w *watchdog) refuse() error {
	if w.state.CommLost {
		return mb.ErrServerDeviceFailure
	}
	return nil
}

// HandleCoils reads coils, or writes them unless communication is lost.
func (d *device) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	if !req.IsWrite {
		return d.bank.HandleCoils(req)
	}
	d.wd.mu.Lock()
	defer d.wd.mu.Unlock()
	if err := d.wd.refuse(); err != nil {
		return nil, err
	}
	return d.bank.HandleCoils(req)
}

// HandleDiscreteInputs reads discrete inputs and the comm-lost flag.
func (d *device) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	if in(req.Addr, req.Quantity, WatchdogCommLost, 1) {
		return []bool{d.wd.snapshot().CommLost}, nil
	}
	return d.bank.HandleDiscreteInputs(req)
}

// HandleInputRegisters reads input registers and the trip count.
func (d *device) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	if in(req.Addr, req.Quantity, WatchdogTrips, 1) {
		return []uint16{d.wd.snapshot().Trips}, nil
	}
	return d.bank.HandleInputRegisters(req)
}

// HandleHoldingRegisters reads or writes holding registers and the
// watchdog's timeout and keep-alive.
func (d *device) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	d.wd.mu.Lock()
	defer d.wd.mu.Unlock()
	if in(req.Addr, req.Quantity, WatchdogTimeoutRegister, 2) {
		if req.IsWrite {
			if len(req.Args) != int(req.Quantity) {
				return nil, mb.ErrIllegalDataValue
			}
			for i, v := range req.Args {
				d.wd.write(int(req.Addr)+i, v)
			}
			return nil, nil
		}
		out := make([]uint16, req.Quantity)
		for i := range out {
			out[i] = d.wd.holding(int(req.Addr) + i)
		}
		return out, nil
	}
	if req.IsWrite {
		if err := d.wd.refuse(); err != nil {
			return nil, err
		}
	}
	return d.bank.HandleHoldingRegisters(req)
}
