package app

import (
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Channel is the executive's Channel on a shared-memory Writer: the image
// published every cycle (the changed tags; all of them the first time),
// the heartbeat and state, the events and overruns, the shared histograms,
// and the command ring drained into the executive. The executive speaks
// the channel's vocabulary (shm/wire), so commands, results, states and
// events pass through as they are. The control program uses it, and so
// does the latency runner's synthetic program.
//
// Hot path: every method runs on a task thread, never blocks and allocates
// nothing except for the text of a parameter or string command.
type Channel struct {
	w      *shm.Writer
	res    []wire.Result // a unit's results
	state  wire.State
	code   wire.FaultCode
	first  bool // no image published yet
	stated bool // no state published yet
	// link translates a take command's time from the running executive's
	// clock (hand-over between kernels).
	link clockLink
}

var _ executive.Channel = (*Channel)(nil)

// NewChannel is the executive's Channel on w.
func NewChannel(w *shm.Writer) *Channel {
	return &Channel{w: w, first: true, res: make([]wire.Result, w.Layout().CommandCapacity())}
}

// DrainCommands applies the units of the command ring while fewer than
// max commands were taken.
func (c *Channel) DrainCommands(max int, apply func([]wire.Command, []wire.Result)) int {
	n := 0
	for n < max {
		unit := c.w.PollUnit()
		if unit == nil {
			break
		}
		n += len(unit)
		for i := range unit {
			if unit[i].Kind == wire.Take {
				unit[i].Value.Num = float64(c.link.ours(int64(unit[i].Value.Num)))
			}
		}
		res := c.res[:len(unit)]
		apply(unit, res)
		for _, r := range res {
			c.w.Reply(r)
		}
	}
	return n
}

// Publish writes the image; only the tags changed since the last cycle are copied.
func (c *Channel) Publish(tab *tag.Table, cycle uint64) {
	if c.first {
		c.w.PublishAll(cycle, tab.Samples, tab.Text)
		c.first = false
		return
	}
	c.w.Publish(cycle, tab.Samples, tab.Text)
}

// Heartbeat bumps the heartbeat and publishes state changes.
func (c *Channel) Heartbeat(h executive.Heartbeat) {
	if h.State != c.state || h.Code != c.code || !c.stated {
		c.state, c.code, c.stated = h.State, h.Code, true
		c.w.SetState(h.State, h.Code)
	}
	c.w.Beat(h.Cycle, int64(h.Time))
}

// Event forwards overruns, faults and state changes to the event ring.
func (c *Channel) Event(e wire.Event) {
	if e.Kind == wire.Overrun {
		c.w.Overrun(e.Task)
	}
	c.w.PushEvent(e)
}

// RecordLatency records one cycle's timing into the shared histograms.
func (c *Channel) RecordLatency(task int, wake, exec time.Duration) {
	c.w.RecordWakeup(task, int64(wake))
	c.w.RecordExec(task, int64(exec))
}
