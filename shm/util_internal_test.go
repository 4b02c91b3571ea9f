package shm

import (
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"
	"unsafe"
)

// fileRegion maps a temporary file: memory shared between goroutines must be
// a mapping (as in production), which the race detector does not track.
func fileRegion(t testing.TB, size int64) *Region {
	t.Helper()
	r, err := Open(File(filepath.Join(t.TempDir(), "region"), size, true))
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func unsafeBytes(w []uint64) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8) }

func atomic64(b []byte, off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

func crcOf(b []byte) uint32 { return crc32.Checksum(b[:hCRC], castagnoli) }
