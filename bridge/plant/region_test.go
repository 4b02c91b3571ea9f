package plant_test

import (
	"testing"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/tag"
)

func TestMarkStale(t *testing.T) {
	s := []tag.Sample{
		{Value: 1, Quality: tag.Good},
		{Value: 2, Quality: tag.Uncertain},
		{Value: 3, Quality: tag.Bad, Reason: tag.Timeout},
		{Value: 4, Quality: tag.Stale, Reason: tag.CommFailure},
	}
	plant.MarkStale(s)
	want := []tag.Sample{
		{Value: 1, Quality: tag.Stale, Reason: tag.NotRunning},
		{Value: 2, Quality: tag.Stale, Reason: tag.NotRunning},
		{Value: 3, Quality: tag.Bad, Reason: tag.Timeout},
		{Value: 4, Quality: tag.Stale, Reason: tag.CommFailure},
	}
	for i := range s {
		if s[i] != want[i] {
			t.Errorf("sample %d = %+v, want %+v", i, s[i], want[i])
		}
	}
	// Hot path: the bridge's scan calls it through Snapshot.
	big := make([]tag.Sample, 1000)
	if n := testing.AllocsPerRun(100, func() { plant.MarkStale(big) }); n != 0 {
		t.Errorf("MarkStale allocates %v times", n)
	}
}
