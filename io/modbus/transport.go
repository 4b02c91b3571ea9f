package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	gb "github.com/goburrow/modbus"
	"github.com/goburrow/serial"

	"github.com/mkrt/mkrt/configs"
)

// Dialer opens TCP connections; *net.Dialer is one. Tests substitute their
// own to reach fakes.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Frame sizes.
const (
	tcpHeader = 7   // MBAP header: transaction, protocol, length, unit
	maxADU    = 260 // largest Modbus TCP frame; RTU frames are at most 256
)

// deadlineConn is a stream connection with a deadline for every read and
// write: a net.Conn, or on Linux a socket out of the runtime's poller.
type deadlineConn interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// transport is one open connection to a device. It implements goburrow's
// Transporter: goburrow encodes the request and checks the answer with its
// packager, this type moves the frames. Compared with goburrow's own TCP
// transporter it waits for an answer in poll(2) outside the runtime's
// network poller and reads all of it with one read in the common case
// (see fdConn),
// rejects a wrong transaction id, protocol id or function before goburrow
// sees the frame (goburrow v0.1.0 does compare transaction ids, but keeps
// the connection, so one late answer shifts every later answer by one), tells
// a truncated answer from a silent device, frames RTU exceptions correctly
// (goburrow v0.1.0's RTU transporter tests fc&0x80 of the request, which is
// never set) and binds to the dedicated NIC.
type transport struct {
	rw       io.ReadWriteCloser
	conn     deadlineConn // nil for a serial port
	rtu      bool
	deadline time.Time
	buf      [maxADU]byte
	// t35 is the RTU inter-frame silence on a serial line.
	t35 time.Duration
}

// Send writes one request frame and reads its answer. The answer aliases an
// internal buffer, valid until the next Send.
func (t *transport) Send(req []byte) ([]byte, error) {
	if t.conn != nil {
		if err := t.conn.SetDeadline(t.deadline); err != nil {
			return nil, fmt.Errorf("%w: set deadline: %w", ErrComm, err)
		}
	} else if t.t35 > 0 {
		time.Sleep(t.t35)
	}
	if _, err := t.rw.Write(req); err != nil {
		return nil, ioError("write request", err, 0, 0)
	}
	if t.rtu {
		return t.readRTU(req)
	}
	return t.readTCP(req)
}

func (t *transport) readTCP(req []byte) ([]byte, error) {
	n, need := 0, tcpHeader
	for n < need {
		m, err := t.rw.Read(t.buf[n:])
		n += m
		if n >= tcpHeader && need == tcpHeader {
			length := int(binary.BigEndian.Uint16(t.buf[4:]))
			if length < 2 || length > maxADU-6 {
				return nil, fmt.Errorf("%w: MBAP length %d outside 2-%d", ErrBadFrame, length, maxADU-6)
			}
			need = 6 + length
		}
		if err != nil && n < need {
			return nil, ioError("read response", err, n, need)
		}
	}
	if n > need {
		return nil, fmt.Errorf("%w: %d bytes after the %d-byte response", ErrBadFrame, n-need, need)
	}
	if got, want := binary.BigEndian.Uint16(t.buf[0:]), binary.BigEndian.Uint16(req[0:]); got != want {
		return nil, fmt.Errorf("%w: got %d, sent %d", ErrTransactionID, got, want)
	}
	if p := binary.BigEndian.Uint16(t.buf[2:]); p != 0 {
		return nil, fmt.Errorf("%w: protocol id %d, want 0", ErrBadFrame, p)
	}
	if err := checkFunction(req[tcpHeader], t.buf[tcpHeader:need]); err != nil {
		return nil, err
	}
	return t.buf[:need], nil
}

// checkFunction checks that a response PDU answers the request's function:
// the same function, or an exception of exactly two bytes.
func checkFunction(fc byte, pdu []byte) error {
	switch {
	case pdu[0] == fc:
		if len(pdu) < 2 {
			return fmt.Errorf("%w: empty response to function %d", ErrBadFrame, fc)
		}
		return nil
	case pdu[0] == fc|0x80:
		if len(pdu) != 2 {
			return fmt.Errorf("%w: exception response of %d bytes, want 2", ErrBadFrame, len(pdu))
		}
		return nil
	}
	return fmt.Errorf("%w: response function %d to request function %d", ErrBadFrame, pdu[0], fc)
}

// rtuLength is the full length of an RTU response frame from its first
// bytes, or 0 when more bytes are needed to tell.
func rtuLength(fc byte, head []byte) (int, error) {
	if len(head) < 2 {
		return 0, nil
	}
	switch got := head[1]; {
	case got == fc|0x80:
		return 5, nil
	case got != fc:
		return 0, fmt.Errorf("%w: response function %d to request function %d", ErrBadFrame, got, fc)
	}
	switch fc {
	case gb.FuncCodeReadCoils, gb.FuncCodeReadDiscreteInputs, gb.FuncCodeReadHoldingRegisters,
		gb.FuncCodeReadInputRegisters, gb.FuncCodeReadWriteMultipleRegisters:
		if len(head) < 3 {
			return 0, nil
		}
		return 5 + int(head[2]), nil
	case gb.FuncCodeWriteSingleCoil, gb.FuncCodeWriteSingleRegister,
		gb.FuncCodeWriteMultipleCoils, gb.FuncCodeWriteMultipleRegisters:
		return 8, nil
	case gb.FuncCodeMaskWriteRegister:
		return 10, nil
	}
	return 0, fmt.Errorf("%w: cannot frame RTU response to function %d", ErrBadFrame, fc)
}

func (t *transport) readRTU(req []byte) ([]byte, error) {
	n, need := 0, 0
	for need == 0 || n < need {
		m, err := t.rw.Read(t.buf[n:])
		n += m
		if need == 0 {
			l, lerr := rtuLength(req[1], t.buf[:n])
			if lerr != nil {
				return nil, lerr
			}
			need = l
		}
		if err != nil && (need == 0 || n < need) {
			return nil, ioError("read response", err, n, max(need, 1))
		}
	}
	if n > need {
		return nil, fmt.Errorf("%w: %d bytes after the %d-byte response", ErrBadFrame, n-need, need)
	}
	return t.buf[:need], nil
}

// ioError classifies a read or write error; got of want bytes had arrived.
func ioError(op string, err error, got, want int) error {
	var ne net.Error
	timeout := errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, serial.ErrTimeout)
	switch {
	case got > 0:
		return fmt.Errorf("%w: truncated response, %d of %d bytes: %w", ErrBadFrame, got, want, err)
	case timeout:
		return fmt.Errorf("%w: %s: %w", ErrTimeout, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrComm, op, err)
}

// Close closes the connection.
func (t *transport) Close() error { return t.rw.Close() }

// connector opens a TCP connection to a device within ctx. A Scanner's
// connector dials with its Dialer (dialWith); DriveSafe hands its scanners
// connections started on the calling goroutine.
type connector func(ctx context.Context) (deadlineConn, error)

// dialWith is the connector that dials dev with d and takes the socket out
// of the runtime's poller.
func dialWith(d Dialer, dev *configs.Device) connector {
	return func(ctx context.Context) (deadlineConn, error) {
		c, err := d.DialContext(ctx, "tcp", dev.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: dial %s: %w", ErrConnect, dev.Address, err)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		dc, err := detach(c)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConnect, err)
		}
		return dc, nil
	}
}

// open connects to the device within ctx: opens its serial port, or
// connects with connect.
func open(ctx context.Context, dev *configs.Device, connect connector) (*transport, error) {
	if dev.Driver == configs.DriverModbusRTU {
		cfg := serial.Config{Address: dev.Address, BaudRate: dev.Serial.BaudRate, DataBits: dev.Serial.DataBits,
			StopBits: dev.Serial.StopBits, Parity: dev.Serial.Parity, Timeout: dev.Timeout.D()}
		port, err := serial.Open(&cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: open serial port %s: %w", ErrConnect, dev.Address, err)
		}
		// 3.5 characters of 11 bits; at least 1.75 ms above 19200 baud.
		t35 := max(time.Duration(38500*int64(time.Millisecond)/int64(dev.Serial.BaudRate)), 1750*time.Microsecond)
		return &transport{rw: port, rtu: true, t35: t35}, nil
	}
	dc, err := connect(ctx)
	if err != nil {
		return nil, err
	}
	return &transport{rw: dc, conn: dc, rtu: dev.Driver == configs.DriverModbusRTUOverTCP}, nil
}

// newDialer is the default dialer: bound to iface when one is named.
func newDialer(dev *configs.Device) *net.Dialer {
	d := &net.Dialer{Timeout: dev.Timeout.D()}
	if dev.Interface != "" {
		d.Control = bindToDevice(dev.Interface)
	}
	return d
}

// packager is goburrow's frame encoding for the device's driver.
func packager(dev *configs.Device) gb.Packager {
	if dev.Driver == configs.DriverModbusTCP {
		h := gb.NewTCPClientHandler(dev.Address)
		h.SlaveId = byte(dev.UnitID)
		return h
	}
	h := gb.NewRTUClientHandler(dev.Address)
	h.SlaveId = byte(dev.UnitID)
	return h
}
