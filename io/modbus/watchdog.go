package modbus

import (
	"errors"
	"fmt"
	"time"

	gb "github.com/goburrow/modbus"

	"github.com/mkrt/mkrt/configs"
)

// devWatchdog is a device's own comm-loss watchdog (configs.DeviceWatchdog)
// as the scanner feeds it: the timeout register written at every connect
// and the keep-alive written every period from the I/O goroutine.
type devWatchdog struct {
	timeoutAt int    // holding address of the timeout register; -1: none
	steps     uint16 // the timeout in the register's unit
	keepArea  configs.Area
	keepAt    int // address of the keep-alive register or coil; -1: none
	toggle    bool
	every     time.Duration
}

// newDevWatchdog resolves dev's watchdog; nil when it has none.
func newDevWatchdog(dev *configs.Device) (*devWatchdog, error) {
	w := &dev.Watchdog
	if !w.Enabled() {
		return nil, nil
	}
	var errs configs.Errors
	pos := w.Pos
	if pos.Line == 0 {
		pos = dev.Pos
	}
	d := &devWatchdog{timeoutAt: -1, keepAt: -1}
	if r := w.TimeoutRegister; r != nil {
		steps, err := w.Steps()
		switch {
		case err != nil:
			errs.Add(pos, "device %s: watchdog: %v", dev.Name, err)
		case r.RegisterArea() != configs.AreaHolding:
			errs.Add(pos, "device %s: watchdog: timeout_register must be a holding register, not %s", dev.Name, r.RegisterArea())
		case r.Address < 0 || r.Address > 65535:
			errs.Add(pos, "device %s: watchdog: timeout_register address %d is outside 0-65535", dev.Name, r.Address)
		}
		d.timeoutAt, d.steps = r.Address, steps
	}
	if r := w.KeepAliveRegister; r != nil {
		d.keepArea, d.keepAt = r.RegisterArea(), r.Address
		d.toggle = d.keepArea == configs.AreaCoil || w.KeepAliveMode() == configs.KeepAliveToggle
		d.every = w.KeepAlivePeriod()
		switch {
		case d.keepArea != configs.AreaHolding && d.keepArea != configs.AreaCoil:
			errs.Add(pos, "device %s: watchdog: keepalive_register must be a holding register or a coil, not %s", dev.Name, d.keepArea)
		case r.Address < 0 || r.Address > 65535:
			errs.Add(pos, "device %s: watchdog: keepalive_register address %d is outside 0-65535", dev.Name, r.Address)
		case d.every <= 0 || d.every >= w.Timeout.D():
			errs.Add(pos, "device %s: watchdog: keepalive_every %s is not shorter than timeout %s", dev.Name, d.every, w.Timeout)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return d, nil
}

// armWatchdog writes the device watchdog's timeout register and a first
// keep-alive on a new connection, before anything else. A protocol
// exception (a device without the register) is reported and the
// connection kept; an error that drops the connection is returned.
func (s *Scanner) armWatchdog() error {
	w := s.plan.wd
	s.wdErr, s.wdWarned = nil, false
	if w == nil {
		return nil
	}
	if w.timeoutAt >= 0 {
		_, err := s.do(func(c gb.Client) ([]byte, error) { return c.WriteSingleRegister(uint16(w.timeoutAt), w.steps) },
			func() string { return fmt.Sprintf("write watchdog timeout %d to holding %d", w.steps, w.timeoutAt) })
		if err := s.watchdogFailed(err); err != nil {
			return err
		}
	}
	if w.keepAt < 0 {
		return nil
	}
	return s.writeKeepAlive()
}

// keepAliveAt is when the next keep-alive is due; zero when there is none
// to write (no keep-alive register, or not connected).
func (s *Scanner) keepAliveAt() time.Time {
	if s.plan.wd == nil || s.plan.wd.keepAt < 0 || s.tr == nil {
		return time.Time{}
	}
	return s.kaNext
}

// keepAliveDue writes the keep-alive when its period has come. The I/O
// goroutine calls it between requests and when its timer wakes it, so a
// keep-alive waits at most for one request in flight.
func (s *Scanner) keepAliveDue() error {
	if at := s.keepAliveAt(); at.IsZero() || time.Now().Before(at) {
		return nil
	}
	return s.writeKeepAlive()
}

// writeKeepAlive writes the next keep-alive value: 1, 2, ... 65535, 1, ...
// (never 0), or 1, 0, 1, ... when it toggles. The value moves on only when
// the device took the previous one.
func (s *Scanner) writeKeepAlive() error {
	w := s.plan.wd
	s.kaNext = time.Now().Add(w.every)
	v := s.kaValue + 1
	switch {
	case w.toggle:
		v = 1 - min(s.kaValue, 1)
	case v == 0:
		v = 1
	}
	var err error
	if w.keepArea == configs.AreaCoil {
		_, err = s.do(func(c gb.Client) ([]byte, error) { return c.WriteSingleCoil(uint16(w.keepAt), v*0xFF00) },
			func() string { return fmt.Sprintf("write watchdog keep-alive %d to coil %d", v, w.keepAt) })
	} else {
		_, err = s.do(func(c gb.Client) ([]byte, error) { return c.WriteSingleRegister(uint16(w.keepAt), v) },
			func() string { return fmt.Sprintf("write watchdog keep-alive %d to holding %d", v, w.keepAt) })
	}
	if err == nil {
		s.kaValue = v
		s.mu.Lock()
		s.stats.KeepAlives++
		s.mu.Unlock()
	}
	return s.watchdogFailed(err)
}

// watchdogFailed reports a failed write of the watchdog's registers like a
// failed output write (counted, last error, logged once per connection)
// and returns it when it drops the connection.
func (s *Scanner) watchdogFailed(err error) error {
	if err == nil {
		return nil
	}
	if s.wdErr == nil {
		s.wdErr = err
	}
	if dropsConnection(err) {
		return err
	}
	s.record(err)
	if !s.wdWarned {
		s.wdWarned = true
		s.log.Warn("modbus: device watchdog write refused; the device may not fall back to its safe values on its own", "device", s.dev.Name, "err", err)
	}
	return nil
}

// errNoRedial is a second connection asked of a one-shot connector.
var errNoRedial = errors.New("modbus: connection already used; DriveSafe dials on the calling goroutine only")
