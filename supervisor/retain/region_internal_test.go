package retain

import (
	"math"
	"testing"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
)

func TestUpdateRetainedKeepsLastGoodValue(t *testing.T) {
	infos := []tag.Info{{Name: "a", Retain: true}, {Name: "b"}, {Name: "c", Retain: true}}
	ids := []tag.ID{0, 2}
	k := kept{latest: make([]Value, 2), have: make([]bool, 2)}
	img := &shm.Image{Samples: []tag.Sample{{Value: 1, Quality: tag.Good}, {}, {Value: math.NaN(), Quality: tag.Good}}, Text: make([]string, 3)}
	if !k.update(ids, infos, img) || !k.have[0] || !k.have[1] || k.latest[0].Value != 1 {
		t.Fatalf("first image: %v %v", k.latest, k.have)
	}
	if k.update(ids, infos, img) {
		t.Error("unchanged image (NaN included) reported as a change")
	}
	// The partition went down: stale values do not replace the saved ones.
	img.Samples[0].Quality, img.Samples[2].Quality = tag.Stale, tag.Stale
	img.Samples[0].Value = 7
	if k.update(ids, infos, img) || k.latest[0].Value != 1 {
		t.Errorf("stale image changed the retained values: %v", k.latest)
	}
	img.Samples[0] = tag.Sample{Value: 2, Quality: tag.Good}
	if !k.update(ids, infos, img) || k.latest[0].Value != 2 {
		t.Errorf("good new value not taken: %v", k.latest)
	}
}
