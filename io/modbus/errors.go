package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	gb "github.com/goburrow/modbus"

	"github.com/mkrt/mkrt/shm/tag"
)

// Errors a Scanner reports, classified with errors.Is. Every request error
// is wrapped in a *RequestError naming the device and the request.
var (
	// ErrConfig is a device or tag the driver cannot poll as configured.
	ErrConfig = errors.New("modbus: invalid device config")
	// ErrConnect is a connection that could not be opened (refused,
	// unreachable, interface down, serial port missing).
	ErrConnect = errors.New("modbus: connect failed")
	// ErrComm is an open connection that failed (reset, closed by the peer).
	ErrComm = errors.New("modbus: communication failure")
	// ErrTimeout is a device that did not answer within its timeout.
	ErrTimeout = errors.New("modbus: timeout")
	// ErrBadFrame is an answer that is malformed or truncated, or does not
	// match the request (length, byte count, function, unit id, CRC).
	ErrBadFrame = errors.New("modbus: malformed response")
	// ErrTransactionID is a Modbus TCP answer whose transaction id is not the
	// request's. It also matches ErrBadFrame.
	ErrTransactionID = fmt.Errorf("%w: wrong transaction id", ErrBadFrame)
	// ErrStarted is a second Start of a Scanner.
	ErrStarted = errors.New("modbus: scanner already started")
)

// ExceptionError is a protocol exception answered by the device.
type ExceptionError struct {
	Function byte // the request's function code
	Code     byte // the exception code (1 illegal function, 2 illegal data address, ...)
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus: exception %d (%s) to function %d", e.Code, exceptionName(e.Code), e.Function)
}

func exceptionName(code byte) string {
	switch code {
	case gb.ExceptionCodeIllegalFunction:
		return "illegal function"
	case gb.ExceptionCodeIllegalDataAddress:
		return "illegal data address"
	case gb.ExceptionCodeIllegalDataValue:
		return "illegal data value"
	case gb.ExceptionCodeServerDeviceFailure:
		return "server device failure"
	case gb.ExceptionCodeAcknowledge:
		return "acknowledge"
	case gb.ExceptionCodeServerDeviceBusy:
		return "server device busy"
	case gb.ExceptionCodeMemoryParityError:
		return "memory parity error"
	case gb.ExceptionCodeGatewayPathUnavailable:
		return "gateway path unavailable"
	case gb.ExceptionCodeGatewayTargetDeviceFailedToRespond:
		return "gateway target device failed to respond"
	}
	return "unknown"
}

// RequestError is a failed request to a device.
type RequestError struct {
	Device string
	Op     string // e.g. "read holding 0+10", "write coil 3+1", "connect"
	Err    error
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("modbus: device %s: %s: %v", e.Device, e.Op, e.Err)
}

func (e *RequestError) Unwrap() error { return e.Err }

// Reason maps a request error to the quality reason its tags carry.
func Reason(err error) tag.Reason {
	var ex *ExceptionError
	switch {
	case err == nil:
		return tag.NoReason
	case errors.As(err, &ex):
		return tag.Exception
	case errors.Is(err, ErrTimeout):
		return tag.Timeout
	case errors.Is(err, ErrBadFrame):
		return tag.BadFrame
	case errors.Is(err, ErrConnect):
		return tag.NotConnected
	case errors.Is(err, ErrConfig):
		return tag.ConfigError
	}
	return tag.CommFailure
}

// classify turns an error of goburrow's client or of a transport into one of
// this package's errors. goburrow reports frame problems as plain fmt errors
// and exceptions as *modbus.ModbusError; transports already classify theirs.
func classify(err error) error {
	var mbe *gb.ModbusError
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return &ExceptionError{Function: mbe.FunctionCode &^ 0x80, Code: mbe.ExceptionCode}
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrBadFrame), errors.Is(err, ErrComm),
		errors.Is(err, ErrConnect), errors.Is(err, ErrConfig):
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.As(err, &ne), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed):
		return fmt.Errorf("%w: %w", ErrComm, err)
	}
	// goburrow's packager and client checks (length, count, unit id, CRC).
	return fmt.Errorf("%w: %w", ErrBadFrame, err)
}

// dropsConnection reports whether err leaves the connection in an unknown
// state (a late answer may still arrive), so it must be closed.
func dropsConnection(err error) bool {
	var ex *ExceptionError
	return err != nil && !errors.As(err, &ex)
}
