package app

import (
	"time"

	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
)

// channel is the executive's Channel on a shared-memory Writer.
//
// Hot path: every method runs on a task thread, never blocks and allocates
// nothing except for the text of a parameter or string command.
type channel struct {
	w      *shm.Writer
	wall   func() time.Time
	cmd    shm.Command
	state  executive.State
	code   executive.FaultCode
	first  bool // no image published yet
	stated bool // no state published yet
	// link translates a take command's time from the running executive's
	// clock (hand-over between kernels).
	link clockLink
}

func newChannel(w *shm.Writer) *channel {
	return &channel{w: w, wall: time.Now, first: true}
}

// DrainCommands applies up to max commands from the command ring.
func (c *channel) DrainCommands(max int, apply func(executive.Command) executive.Result) int {
	n := 0
	for n < max && c.w.PollCommand(&c.cmd) {
		n++
		in := &c.cmd
		cmd := executive.Command{ID: in.ID, Tag: in.Tag, Value: in.Value}
		switch in.Kind {
		case shm.CmdWriteTag:
			cmd.Kind = executive.WriteTag
			if in.IsText {
				cmd.Text = string(in.Text)
			}
		case shm.CmdSetParam:
			cmd.Kind = executive.SetParam
			cmd.Text = string(in.Text)
		case shm.CmdHalt:
			cmd.Kind = executive.Halt
		case shm.CmdHandOver:
			switch string(in.Text) {
			case HandOverRelease:
				cmd.Kind = executive.Release
			case HandOverTake:
				cmd.Kind = executive.Take
				cmd.Value = float64(c.link.ours(int64(in.Value)))
			default:
				c.w.Reply(shm.Result{ID: in.ID, Status: shm.StatusRejected})
				continue
			}
		default:
			c.w.Reply(shm.Result{ID: in.ID, Status: shm.StatusRejected})
			continue
		}
		r := apply(cmd)
		c.w.Reply(shm.Result{ID: in.ID, Status: resultStatus(r.Status), Cycle: r.Cycle, Old: r.Old})
	}
	return n
}

func resultStatus(s executive.ResultStatus) shm.Status {
	switch s {
	case executive.Applied:
		return shm.StatusAccepted
	case executive.UnknownTag:
		return shm.StatusUnknownTag
	case executive.NotWritable, executive.OwnedByTask:
		return shm.StatusReadOnly
	case executive.WrongType:
		return shm.StatusType
	case executive.OutOfRange:
		return shm.StatusOutOfRange
	case executive.Refused:
		return shm.StatusBusy
	}
	return shm.StatusRejected
}

// Publish writes the image; only the tags changed since the last cycle are copied.
func (c *channel) Publish(tab *tag.Table, cycle uint64) {
	if c.first {
		c.w.PublishAll(cycle, tab.Samples, tab.Text)
		c.first = false
		return
	}
	c.w.Publish(cycle, tab.Samples, tab.Text)
}

// Heartbeat bumps the heartbeat and publishes state changes.
func (c *channel) Heartbeat(h executive.Heartbeat) {
	if h.State != c.state || h.Code != c.code || !c.stated {
		c.state, c.code, c.stated = h.State, h.Code, true
		c.w.SetState(State(h.State), uint32(h.Code))
	}
	c.w.Beat(h.Cycle, int64(h.Time))
}

// State maps the executive's state to the channel's.
func State(s executive.State) shm.State {
	switch s {
	case executive.Booting:
		return shm.StateBooting
	case executive.Running:
		return shm.StateRunning
	case executive.Safe:
		return shm.StateSafe
	case executive.Stopping:
		return shm.StateStopping
	case executive.Faulted:
		return shm.StateFaulted
	}
	return shm.StateUnknown
}

// Event forwards overruns, faults and state changes to the event ring.
func (c *channel) Event(e executive.Event) {
	ev := shm.Event{Task: int16(e.Task), Tag: -1, Cycle: e.Cycle, Time: c.wall().UnixNano(), Text: e.Reason}
	switch e.Kind {
	case executive.EventOverrun:
		ev.Kind, ev.Value = shm.EventOverrun, float64(e.Late)
		c.w.Overrun(e.Task)
	case executive.EventFault:
		ev.Kind, ev.Value = shm.EventFault, float64(e.Code)
	case executive.EventState:
		ev.Kind, ev.Value = shm.EventState, float64(State(e.State))
	default:
		return
	}
	c.w.PushEvent(ev)
}

// RecordLatency records one cycle's timing into the shared histograms.
func (c *channel) RecordLatency(task int, wake, exec time.Duration) {
	c.w.RecordWakeup(task, int64(wake))
	c.w.RecordExec(task, int64(exec))
}
