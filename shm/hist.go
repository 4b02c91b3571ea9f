package shm

import (
	"math"
	"math/bits"
)

// histGeom is HdrHistogram's bucket geometry, computed exactly as
// hdrhistogram-go computes it, so that a counts array recorded here imports
// with hdrhistogram.Import into the same buckets.
type histGeom struct {
	low, high     int64
	digits        int
	unitMag       int
	subHalfMag    int
	subHalfCount  int
	subBucketMask uint64
	counts        int
}

func newHistGeom(low, high int64, digits int) histGeom {
	// Single-unit resolution up to 2×10^digits, rounded up to a power of two.
	largest := 2 * math.Pow10(digits)
	subMag := int(math.Ceil(math.Log2(largest)))
	subHalfMag := max(subMag, 1) - 1
	unitMag := max(int(math.Floor(math.Log2(float64(low)))), 0)
	subCount := 1 << (subHalfMag + 1)
	h := histGeom{low: low, high: high, digits: digits, unitMag: unitMag, subHalfMag: subHalfMag,
		subHalfCount: subCount / 2, subBucketMask: uint64(subCount-1) << unitMag}
	smallestUntrackable := int64(subCount) << unitMag
	buckets := 1
	for smallestUntrackable <= high {
		if smallestUntrackable > math.MaxInt64/2 {
			buckets++
			break
		}
		smallestUntrackable <<= 1
		buckets++
	}
	h.counts = (buckets + 1) * (subCount / 2)
	return h
}

// index is the counts index of v, clamped to the trackable range (negative
// values count as 0, values above the highest as the highest).
//
// Hot path: called every cycle; no allocation.
func (h *histGeom) index(v int64) int {
	v = min(max(v, 0), h.high)
	pow2ceil := 64 - bits.LeadingZeros64(uint64(v)|h.subBucketMask)
	bucket := pow2ceil - h.unitMag - (h.subHalfMag + 1)
	sub := int(v >> uint(bucket+h.unitMag))
	i := (bucket+1)<<uint(h.subHalfMag) + sub - h.subHalfCount
	return min(max(i, 0), h.counts-1)
}
