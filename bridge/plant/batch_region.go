package plant

import (
	"context"
	"errors"
	"fmt"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// WriteAll sends cs through the command ring as one unit
// (shm.Reader.SubmitAll) and waits for the executive's answers: every
// write applied in the same cycle, or none. Each write is checked first
// (Check); a unit larger than the ring takes (shm.Reader.UnitMax) is
// refused with shm.ErrInvalid before anything is sent.
func (c *Region) WriteAll(ctx context.Context, cs []wire.Command) ([]wire.Result, error) {
	tags := c.Tags()
	cs = append([]wire.Command(nil), cs...)
	for i := range cs {
		if err := Check(tags, &cs[i]); err != nil {
			return nil, err
		}
		cs[i].Kind = wire.WriteTag
	}
	if up, _ := c.Up(); !up {
		return nil, fmt.Errorf("plant: write %d tags: %w", len(cs), wire.ErrNotRunning)
	}
	ids, err := c.r.SubmitAll(cs)
	if err != nil {
		return nil, fmt.Errorf("plant: write %d tags as one: %w", len(cs), err)
	}
	res := make([]wire.Result, len(ids))
	for i, id := range ids {
		if res[i], err = c.r.Await(ctx, id); err != nil {
			if errors.Is(err, shm.ErrTimeout) {
				return nil, fmt.Errorf("plant: write %d tags: no answer: %w: %w", len(cs), wire.ErrNotRunning, err)
			}
			return nil, err
		}
	}
	return res, unitErr(tags, cs, res)
}

// unitErr is nil when every write of a unit was applied, else the refusal
// of the first one refused, naming its tag.
func unitErr(tags []tag.Info, cs []wire.Command, res []wire.Result) error {
	for i := range res {
		if s := res[i].Status; s != wire.Applied && s != wire.Withdrawn {
			return wire.Refuse(&tags[cs[i].Tag], cs[i].Value, s)
		}
	}
	for i := range res {
		if res[i].Status != wire.Applied {
			return wire.Refuse(&tags[cs[i].Tag], cs[i].Value, res[i].Status)
		}
	}
	return nil
}

var _ Batcher = (*Region)(nil)
