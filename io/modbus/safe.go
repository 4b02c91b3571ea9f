package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// ErrNotSafe is a DriveSafe that could not write every safe-state output;
// the joined device errors say why (errors.Is finds ErrTimeout, ErrConnect,
// *ExceptionError, ...).
var ErrNotSafe = errors.New("modbus: not every safe-state output was written")

// SafeOptions are the options of DriveSafe.
type SafeOptions struct {
	// Dial, when set, opens the TCP connections of modbus-tcp and
	// modbus-rtu-over-tcp devices. DriveSafe calls it on the calling
	// goroutine only, one device after another, each call bounded by the
	// device's timeout (and ctx); the devices already connected are being
	// written meanwhile. When nil, DriveSafe creates the sockets itself on
	// the calling goroutine: on Linux with a non-blocking connect, so that
	// every device connects at once and a dead one delays no other.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection and write messages; default: none.
	Logger *slog.Logger
}

// SafeResult is what DriveSafe did on one device.
type SafeResult struct {
	Device string
	// Outputs are the device's outputs that have a safe state, in the
	// device's tag order.
	Outputs []SafeOutput
	// Watchdog is the first failed write of the device's own watchdog
	// registers, which DriveSafe re-arms before writing (nil: armed, or
	// the device has none).
	Watchdog error
	// Attempts is how many connections were tried (1 + retries at most).
	Attempts int
	// Elapsed is the time from the first connect to the last answer.
	Elapsed time.Duration
	// Err is nil when every output was written, else the reason one was not
	// (device unreachable, timeout, exception, ...).
	Err error
}

// SafeOutput is one output driven to its safe value.
type SafeOutput struct {
	Tag   string
	Value float64 // the safe value in engineering units (bool: 0 or 1)
	Text  string  // the safe value of a string tag
	// Written is true once the device acknowledged the write.
	Written bool
	// Err is why it was not written (nil when Written).
	Err error
}

// DriveSafe drives every output of cfg's watchdog.safe_state to its safe
// value on the field devices, once: what the supervisor does when it has
// declared the partition faulted and fenced it (DESIGN.md §6). cfg is a
// loaded config (configs.Load). It runs the Scanner's own code: the same
// connection (TCP, RTU on a serial line, RTU over TCP, bound to the
// device's interface), the same encoding of types, orders, scale and
// offset, and the same coalescing into as few requests as the protocol
// allows (FC16/FC15, FC6/FC5, FC22 for one bit of a register).
//
// Before writing it re-arms the device's own comm-loss watchdog (timeout
// register and one keep-alive), as the Scanner does at every connect: a
// device whose watchdog has expired refuses writes until then, and once
// DriveSafe has disconnected the device falls back to its own safe values
// one timeout later, should anything else have moved them.
//
// Devices are written concurrently, each bounded by its timeout per
// request and its retries (a request that loses the connection is retried
// on a new one; an exception is not), and every wait by ctx's deadline; a
// cancelled ctx ends DriveSafe within one request timeout. It returns one
// result per device that has outputs in safe_state, in config order, and
// an error wrapping ErrNotSafe and every device's error when an output was
// not written (ErrConfig when the config's tags do not resolve).
//
// Threading: every socket is created on the calling goroutine, so a caller
// that has locked its goroutine to an OS thread and entered the
// partition's network namespace (setns) reaches the devices there; the
// other goroutines only finish connects and move bytes on those sockets.
// A device address must then be an IP address: resolving a host name
// would open sockets on other threads (pass a Dial that resolves in the
// right namespace instead). Sockets are bound to the device's interface as
// the Scanner's are (configs.Device.Interface, by default the partition's
// first NIC); a caller that is not where that NIC is clears it in its copy
// of the config. Serial ports are opened on the device's goroutine.
func DriveSafe(ctx context.Context, cfg *configs.Config, o SafeOptions) ([]SafeResult, error) {
	tab, err := cfg.TagTable()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var jobs []*safeJob
	for _, dev := range cfg.Devices {
		if j := newSafeJob(dev, tab, cfg.Watchdog.SafeState, log); j != nil {
			jobs = append(jobs, j)
		}
	}
	deadline, _ := ctx.Deadline()
	done := make(chan *safeJob, len(jobs))
	launch := func(j *safeJob) {
		j.res.Attempts++
		s := j.s
		s.limit = deadline
		s.connect = connectOnce(s.startConnect(ctx, o.Dial))
		go func() {
			j.err = s.driveSafe(ctx)
			done <- j
		}()
	}
	running := 0
	for _, j := range jobs {
		if j.s == nil {
			continue // nothing to write (config error in every output)
		}
		j.start = time.Now()
		launch(j)
		running++
	}
	for running > 0 {
		j := <-done // bounded: every request of every device is
		if j.retry() && ctx.Err() == nil {
			launch(j)
			continue
		}
		j.finish()
		running--
	}
	results := make([]SafeResult, len(jobs))
	var errs []error
	for i, j := range jobs {
		results[i] = j.res
		if j.res.Err != nil {
			errs = append(errs, j.res.Err)
		}
	}
	if len(errs) > 0 {
		return results, fmt.Errorf("%w: %w", ErrNotSafe, errors.Join(errs...))
	}
	return results, nil
}

// safeJob is one device's part of DriveSafe.
type safeJob struct {
	s     *Scanner // nil when the device cannot be written at all
	res   SafeResult
	pos   map[int]int // binding index -> index in res.Outputs
	err   error       // of the last attempt
	start time.Time
}

// errNotWritten marks an armed output no write has acknowledged yet.
var errNotWritten = errors.New("modbus: not written")

// newSafeJob builds the scanner of dev with its safe-state outputs armed,
// or nil when dev has none.
func newSafeJob(dev configs.Device, tab *tag.Table, safe map[string]configs.Value, log *slog.Logger) *safeJob {
	j := &safeJob{res: SafeResult{Device: dev.Name}, pos: map[int]int{}}
	for _, it := range dev.Tags {
		v, ok := safe[it.Name]
		if !ok {
			continue
		}
		out := SafeOutput{Tag: it.Name, Err: errNotWritten}
		// As the executive takes a safe value: text for a string, else a
		// number (true/false are 1 and 0).
		if id, ok := tab.Lookup(it.Name); ok && tab.Info[id].Type == tag.String {
			out.Text = v.Raw
		} else if f, err := v.Float(); err != nil {
			out.Err = fmt.Errorf("%w: %s: safe_state of %s: %w", ErrConfig, v.Pos, it.Name, err)
		} else {
			out.Value = f
		}
		j.res.Outputs = append(j.res.Outputs, out)
	}
	if len(j.res.Outputs) == 0 {
		return nil
	}
	s, err := NewScanner(dev, tab, WithLogger(log))
	if err != nil {
		j.settle(err)
		return j
	}
	o := s.out.Back()
	for i := range s.plan.bindings {
		b := &s.plan.bindings[i]
		for k := range j.res.Outputs {
			out := &j.res.Outputs[k]
			switch {
			case out.Tag != b.name || out.Err != errNotWritten:
			case !b.write:
				out.Err = fmt.Errorf("%w: tag %s of device %s is read-only; only outputs have a safe state", ErrConfig, b.name, dev.Name)
			default:
				o.values[i], o.text[i], o.armed[i] = min(max(out.Value, b.min), b.max), out.Text, true
				j.pos[i] = k
			}
		}
	}
	s.out.Publish()
	if len(j.pos) == 0 {
		j.settle(nil)
		return j
	}
	s.wrote = func(tags []int, err error) {
		for _, i := range tags {
			out := &j.res.Outputs[j.pos[i]]
			switch {
			case err == nil:
				out.Written, out.Err = true, nil
			case !out.Written:
				out.Err = err
			}
		}
	}
	j.s = s
	return j
}

// retry reports whether the last attempt lost the connection (or never had
// one) and the device has retries left.
func (j *safeJob) retry() bool {
	err := j.err
	if err == nil || !dropsConnection(err) || errors.Is(err, ErrConfig) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return j.res.Attempts <= max(j.s.dev.Retries, 0)
}

// finish settles the result after the last attempt.
func (j *safeJob) finish() {
	j.res.Elapsed = time.Since(j.start)
	j.res.Watchdog = j.s.wdErr
	j.settle(j.err)
}

// settle gives the outputs not written err (when they have no reason of
// their own yet) and the device its error: err, or the first output's.
func (j *safeJob) settle(err error) {
	j.res.Err = err
	for k := range j.res.Outputs {
		out := &j.res.Outputs[k]
		if out.Written {
			continue
		}
		if err != nil && out.Err == errNotWritten {
			out.Err = err
		}
		if j.res.Err == nil {
			j.res.Err = fmt.Errorf("modbus: device %s: %s: %w", j.res.Device, out.Tag, out.Err)
		}
	}
}

// driveSafe connects, re-arms the device's watchdog and writes the armed
// outputs once, on its own goroutine: s.connect only completes a
// connection DriveSafe's calling goroutine began.
func (s *Scanner) driveSafe(ctx context.Context) error {
	defer func() {
		s.connected = false // hanging up, not losing the device: nothing to warn about
		s.disconnect()
	}()
	if err := s.ensureConnected(ctx); err != nil {
		s.record(err)
		return err
	}
	return s.writeOutputs(ctx)
}

// startConnect begins the device's connection on the calling goroutine:
// with dial when given (bounded by the device's timeout), else startDial.
// A serial line needs none (its port is opened where it is used).
func (s *Scanner) startConnect(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error)) connector {
	if s.dev.Driver == configs.DriverModbusRTU {
		return nil
	}
	if dial == nil {
		return startDial(ctx, &s.dev)
	}
	return dialNow(ctx, dialFunc(dial), &s.dev)
}

// dialNow dials dev with d on the calling goroutine, bounded by the
// device's timeout, and returns the connection as a connector.
func dialNow(ctx context.Context, d Dialer, dev *configs.Device) connector {
	dctx, cancel := context.WithTimeout(ctx, dev.Timeout.D())
	defer cancel()
	dc, err := dialWith(d, dev)(dctx)
	if err != nil && dctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return func(context.Context) (deadlineConn, error) { return dc, err }
}

// connectOnce lets c be used for one connection; a second one would have
// to be dialed off the calling goroutine, so it is refused.
func connectOnce(c connector) connector {
	used := false
	return func(ctx context.Context) (deadlineConn, error) {
		if used || c == nil {
			return nil, fmt.Errorf("%w: %w", ErrConnect, errNoRedial)
		}
		used = true
		return c(ctx)
	}
}

// dialFunc is a Dialer made of a function.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
