package tag_test

import (
	"math"
	"testing"

	"github.com/mkrt/mkrt/shm/tag"
)

func TestChanged(t *testing.T) {
	num := &tag.Info{Name: "level", Type: tag.Float64, Deadband: 0.5}
	str := &tag.Info{Name: "recipe", Type: tag.String}
	good := func(v float64) tag.Sample { return tag.Sample{Value: v, Quality: tag.Good} }
	nan := math.NaN()
	for _, c := range []struct {
		in         *tag.Info
		cur, last  tag.Sample
		ctext, ltx string
		want       bool
	}{
		{num, good(1), good(1), "", "", false},
		{num, good(1.4), good(1), "", "", false}, // within the deadband
		{num, good(1.6), good(1), "", "", true},
		{num, good(nan), good(nan), "", "", false}, // a NaN tag is not republished every scan
		{num, good(nan), good(1), "", "", true},
		{num, good(1), good(nan), "", "", true},
		{num, tag.Sample{Value: 1, Quality: tag.Bad}, good(1), "", "", true},
		{num, good(math.Inf(1)), good(math.Inf(1)), "", "", false},
		{str, good(0), good(0), "a", "a", false},
		{str, good(0), good(0), "b", "a", true},
	} {
		if got := c.in.Changed(c.cur, c.last, c.ctext, c.ltx); got != c.want {
			t.Errorf("%s %+v after %+v (%q after %q): changed %v, want %v", c.in.Name, c.cur, c.last, c.ctext, c.ltx, got, c.want)
		}
	}
}
