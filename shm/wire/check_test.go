package wire_test

import (
	"strings"
	"testing"

	"github.com/mkrt/mkrt/shm/tag"

	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/shm/wire/wiretest"
)

func TestCheckTagWrite(t *testing.T) {
	dir := wiretest.Tags()
	for _, c := range wiretest.WriteCases() {
		if got := wire.CheckTagWrite(dir, c.ID(), c.Value); got != c.Want {
			t.Errorf("%s <- %v: %v, want %v", c.Tag, c.Value, got, c.Want)
		}
		if c.Want == wire.Applied || c.Want == wire.UnknownTag {
			continue
		}
		// The refusal names the tag and says why, and classifies.
		in := &dir[c.ID()]
		err := wire.Refuse(in, c.Value, c.Want)
		if msg := err.Error(); msg == "" || !strings.Contains(msg, in.Name) || !strings.Contains(msg, c.Want.String()) {
			t.Errorf("%s <- %v: refusal %q", c.Tag, c.Value, msg)
		}
	}
}

func TestCheckWriteAllocatesNothing(t *testing.T) {
	dir := wiretest.Tags()
	cases := wiretest.WriteCases()
	ids := make([]tag.ID, len(cases))
	for i, c := range cases {
		ids[i] = c.ID()
	}
	if n := testing.AllocsPerRun(100, func() {
		for i, c := range cases {
			wire.CheckTagWrite(dir, ids[i], c.Value)
		}
	}); n != 0 {
		t.Errorf("CheckTagWrite allocates %v times", n)
	}
}
