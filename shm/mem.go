package shm

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// mem is the mapped region. Fields are little-endian; 8- and 4-byte fields
// shared between the sides are accessed with sync/atomic through pointers
// into the mapping (the host must be little-endian, which Attach checks).
type mem []byte

// u64 points at the 8-byte word at off; off is 8-aligned and in range
// because every offset comes from a validated layout.
func (m mem) u64(off int) *uint64 {
	_ = m[off+7]
	return (*uint64)(unsafe.Pointer(&m[off]))
}

func (m mem) u32(off int) *uint32 {
	_ = m[off+3]
	return (*uint32)(unsafe.Pointer(&m[off]))
}

func (m mem) load(off int) uint64       { return atomic.LoadUint64(m.u64(off)) }
func (m mem) store(off int, v uint64)   { atomic.StoreUint64(m.u64(off), v) }
func (m mem) add(off int, d uint64)     { atomic.AddUint64(m.u64(off), d) }
func (m mem) load32(off int) uint32     { return atomic.LoadUint32(m.u32(off)) }
func (m mem) store32(off int, v uint32) { atomic.StoreUint32(m.u32(off), v) }

// loadBytes copies n bytes at off (8-aligned) into dst with 8-byte atomic
// loads, so that a seqlock reader's loads stay ordered on weakly ordered
// CPUs. dst must hold n rounded up to 8 bytes.
func (m mem) loadBytes(dst []byte, off, n int) {
	for i := 0; i < n; i += 8 {
		le.PutUint64(dst[i:], m.load(off+i))
	}
}

// Region is a mapped shared-memory region. Open maps one; NewRegion wraps
// memory mapped by other means. Close unmaps it.
type Region struct {
	mem   []byte
	desc  string
	unmap func() error
}

// NewRegion wraps mem (8-byte aligned, for example from an mmap) as a
// region; desc names it in errors. The caller keeps mem mapped until the
// region is no longer used.
func NewRegion(mem []byte, desc string) (*Region, error) {
	if err := checkMemory(mem, desc); err != nil {
		return nil, err
	}
	return &Region{mem: mem, desc: desc, unmap: func() error { return nil }}, nil
}

func checkMemory(b []byte, desc string) error {
	one := uint16(1)
	if *(*byte)(unsafe.Pointer(&one)) != 1 {
		return fmt.Errorf("shm: %s: %w: the region is little-endian and is accessed with native atomics; this host is big-endian", desc, ErrUnsupported)
	}
	if len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%8 != 0 {
		return fmt.Errorf("shm: %s: %w: memory is not 8-byte aligned", desc, ErrInvalid)
	}
	return nil
}

// Bytes is the mapped memory.
func (r *Region) Bytes() []byte { return r.mem }

// Len is the mapped length in bytes.
func (r *Region) Len() int { return len(r.mem) }

func (r *Region) String() string { return r.desc }

// Close unmaps the region. Writers and readers on it must not be used after.
func (r *Region) Close() error {
	if r.unmap == nil {
		return nil
	}
	err := r.unmap()
	r.unmap, r.mem = nil, nil
	return err
}
