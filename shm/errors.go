package shm

import (
	"errors"
	"fmt"
)

// Errors a caller classifies with errors.Is. Every error this package returns
// is prefixed "shm:" and wraps one of these (or an *os.PathError /
// *SyscallError for transport failures).
var (
	// ErrNotFormatted: the region is blank (all-zero header); the executive
	// has not formatted it yet. A bridge retries until its deadline.
	ErrNotFormatted = errors.New("region not formatted")
	// ErrMagic: the region does not start with the mkrt magic.
	ErrMagic = errors.New("bad magic")
	// ErrVersion: the region uses a layout version this build does not know.
	ErrVersion = errors.New("unknown layout version")
	// ErrSize: the region's size does not match the layout or the mapping.
	ErrSize = errors.New("size mismatch")
	// ErrConfigHash: the region was formatted for a different control config.
	ErrConfigHash = errors.New("config hash mismatch")
	// ErrPartition: the region belongs to another partition.
	ErrPartition = errors.New("partition mismatch")
	// ErrLayout: a layout parameter (tag count, ring capacity, histogram
	// range, section offset) differs from what this side computed.
	ErrLayout = errors.New("layout mismatch")
	// ErrCorrupt: an offset, count or checksum in the region is impossible.
	ErrCorrupt = errors.New("region corrupted")
	// ErrWriterLive: another executive still owns the region (its heartbeat
	// moved while we watched). Attach with Force to take over anyway.
	ErrWriterLive = errors.New("region owned by a live writer")
	// ErrTimeout: no result arrived before the context's deadline.
	ErrTimeout = errors.New("no result before the deadline")
	// ErrInvalid: a parameter or argument is out of range.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnsupported: the platform cannot map shared memory.
	ErrUnsupported = errors.New("not supported on this platform")
)

// MismatchError is a validation failure naming the field and both values.
// It wraps the sentinel (ErrMagic, ErrSize, ErrConfigHash, ...) that
// classifies it.
type MismatchError struct {
	Field string
	Want  string // what this side expected
	Got   string // what the region holds
	Err   error
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("shm: %v: %s: region has %s, expected %s", e.Err, e.Field, e.Got, e.Want)
}

func (e *MismatchError) Unwrap() error { return e.Err }

func mismatch(err error, field string, want, got any) error {
	return &MismatchError{Field: field, Want: fmt.Sprint(want), Got: fmt.Sprint(got), Err: err}
}

// SyscallError is a failed system call on a transport: the call, the path and
// the errno (Err is a syscall.Errno, so errors.Is(err, fs.ErrPermission)
// and friends work).
type SyscallError struct {
	Syscall string
	Path    string
	Err     error
}

func (e *SyscallError) Error() string {
	return fmt.Sprintf("shm: %s %s: %v", e.Syscall, e.Path, e.Err)
}

func (e *SyscallError) Unwrap() error { return e.Err }
