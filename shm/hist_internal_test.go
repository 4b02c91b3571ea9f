package shm

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TestHistGeomMatchesLibrary proves the counts array recorded in the region
// imports into the same buckets hdrhistogram-go would have used.
func TestHistGeomMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, high := range []int64{2, 1000, 1e6, 1e8, 3600e9, 1 << 60} {
		for digits := 1; digits <= 5 && (high < 1<<40 || digits <= 3); digits++ {
			g := newHistGeom(1, high, digits)
			ref := hdrhistogram.New(1, high, digits)
			if n := len(ref.Export().Counts); n != g.counts {
				t.Fatalf("high %d digits %d: counts %d, library %d", high, digits, g.counts, n)
			}
			counts := make([]int64, g.counts)
			values := []int64{0, 1, 2, high - 1, high}
			for i := 0; i < 2000; i++ {
				values = append(values, rng.Int64N(high+1), rng.Int64N(min(high, 5000)+1))
			}
			for _, v := range values {
				counts[g.index(v)]++
				if err := ref.RecordValue(v); err != nil {
					t.Fatalf("library rejects %d: %v", v, err)
				}
			}
			if !slices.Equal(counts, ref.Export().Counts) {
				t.Fatalf("high %d digits %d: counts differ from the library's", high, digits)
			}
		}
	}
}
