package shm

import (
	"hash/crc32"
	"unsafe"
)

func unsafeBytes(w []uint64) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8) }

func atomic64(b []byte, off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

func crcOf(b []byte) uint32 { return crc32.Checksum(b[:hCRC], castagnoli) }
