package web

import (
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// TestRingBounded: the ring's memory is fixed at NewRing (slots × (8 + 4 ×
// tags) bytes) however much is appended; it keeps the newest samples,
// oldest first, and a value that is not good is a gap.
func TestRingBounded(t *testing.T) {
	r := NewRing(3, 100)
	if r.Bytes() != 100*(8+4*3) {
		t.Fatalf("Bytes %d", r.Bytes())
	}
	s := make([]tag.Sample, 3)
	for i := range 1000 {
		s[1] = tag.Sample{Value: float64(i), Quality: tag.Good}
		s[2].Quality = tag.Bad
		r.Append(int64(i), s)
	}
	if r.Bytes() != 100*(8+4*3) || cap(r.times) != 100 || cap(r.vals) != 300 {
		t.Fatal("the ring grew")
	}
	ts, vs := r.Series(1, 0, nil, nil)
	if len(ts) != 100 || ts[0] != 900 || vs[0] != 900 || ts[99] != 999 || vs[99] != 999 {
		t.Fatalf("series: %d samples, %v…%v", len(ts), ts[0], ts[len(ts)-1])
	}
	if ts, _ := r.Series(1, 990, nil, nil); len(ts) != 10 {
		t.Fatalf("since 990: %d samples", len(ts))
	}
	if _, vs := r.Series(2, 0, nil, nil); !math.IsNaN(vs[0]) {
		t.Fatal("a bad value is not a gap")
	}
	if ts, _ := r.Series(7, 0, nil, nil); len(ts) != 0 {
		t.Fatal("series of a tag that does not exist")
	}
}

// TestRingAppendAllocs: appending a sample allocates nothing.
func TestRingAppendAllocs(t *testing.T) {
	r := NewRing(1000, 3600)
	s := make([]tag.Sample, 1000)
	var ms int64
	if a := testing.AllocsPerRun(1000, func() { ms++; r.Append(ms, s) }); a != 0 {
		t.Fatalf("Append: %v allocs", a)
	}
}

// TestScanAllocs: the web scan (snapshot, then the trend ring) allocates
// nothing.
func TestScanAllocs(t *testing.T) {
	cfg, err := configs.LoadBytes("t.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := bridgetest.NewPlantFromConfig(cfg, 0)
	c := Config{Trend: time.Minute, TrendEvery: time.Second, Config: cfg}
	h := newHub(c, p)
	v := h.view()
	h.resize(v)
	now := time.Unix(1e9, 0)
	if a := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		if err := h.sample(v, now); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("scan: %v allocs", a)
	}
}

// BenchmarkRingAppend: one sample of 10,000 tags.
func BenchmarkRingAppend(b *testing.B) {
	r := NewRing(10000, 3600)
	s := make([]tag.Sample, 10000)
	for i := range s {
		s[i] = tag.Sample{Value: float64(i), Quality: tag.Good}
	}
	b.ReportAllocs()
	var ms int64
	for b.Loop() {
		ms++
		r.Append(ms, s)
	}
	b.ReportMetric(float64(r.Bytes())/(1<<20), "MiB/ring")
}
