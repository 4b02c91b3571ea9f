package metrics

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/mkrt/mkrt/shm/wire"
)

// WriteResult classifies a write's outcome for counting.
type WriteResult int

// The write results.
const (
	WriteOK WriteResult = iota
	WriteInvalid
	WriteRejected
	WriteBusy
	WriteNotRunning
	WriteTimeout
	nWriteResults
)

var writeResultNames = [nWriteResults]string{"ok", "invalid", "rejected", "busy", "not_running", "timeout"}

func (r WriteResult) String() string {
	if r >= 0 && r < nWriteResults {
		return writeResultNames[r]
	}
	return "unknown"
}

// Classify maps a Plant.Write error to its result.
func Classify(err error) WriteResult {
	var rej *wire.RejectedError
	switch {
	case err == nil:
		return WriteOK
	case errors.Is(err, wire.ErrBusy):
		return WriteBusy
	case errors.Is(err, wire.ErrNotRunning):
		return WriteNotRunning
	case errors.As(err, &rej) && rej.Checked():
		return WriteInvalid
	case errors.Is(err, wire.ErrRejected):
		return WriteRejected
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return WriteTimeout
	}
	return WriteInvalid
}

// Counters are one protocol server's counters. The zero value is ready;
// all methods are safe for concurrent use.
type Counters struct {
	// Published is messages (MQTT) or responses (Modbus) sent.
	Published atomic.Uint64
	// Buffered is records written to the store-and-forward buffer.
	Buffered atomic.Uint64
	// Replayed is buffered records sent after reconnecting.
	Replayed atomic.Uint64
	// Dropped is records refused by the full buffer.
	Dropped atomic.Uint64
	// Connected is 1 while the protocol's connection is up.
	Connected atomic.Bool
	writes    [nWriteResults]atomic.Uint64
}

// CountWrite counts a write by its result.
func (c *Counters) CountWrite(err error) { c.writes[Classify(err)].Add(1) }

// Writes is the number of writes with result r.
func (c *Counters) Writes(r WriteResult) uint64 {
	if r < 0 || r >= nWriteResults {
		return 0
	}
	return c.writes[r].Load()
}
