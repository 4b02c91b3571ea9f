package plant

import (
	"context"

	"github.com/mkrt/mkrt/shm/wire"
)

// Batcher is a Plant that applies several writes as one: the executive
// applies all of them in the same cycle, or none (one refused refuses
// all). A Modbus request that spans several tags is one such unit.
type Batcher interface {
	// WriteAll sends cs as one unit and waits, bounded by ctx, for the
	// answer. On success the results are in the order of cs. A refusal is
	// a *wire.RejectedError naming the first command refused; no command
	// of cs was applied then.
	WriteAll(ctx context.Context, cs []wire.Command) ([]wire.Result, error)
}
