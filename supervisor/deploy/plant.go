package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/supervisor"
)

// channel is the general kernel's view of a partition through its shared
// region: the bridge's Plant, the supervisor's Heartbeat and TaskSource.
type channel struct {
	r     *shm.Reader
	tasks []shm.Task
	tags  []tag.Info

	mu   sync.Mutex
	img  shm.Image
	up   bool // the supervisor declared the partition up
	down string
}

// newChannel reads the region through r; cfgTags are the tags of the
// config the region was formatted for.
func newChannel(r *shm.Reader, cfgTags []tag.Info) *channel {
	return &channel{r: r, tasks: r.Tasks(), tags: directory(r.Tags(), cfgTags)}
}

// directory is the region's tag directory completed from the config: the
// region does not store a tag's device, and without it the Sparkplug node
// would publish field tags as node metrics and never birth or kill the
// device.
func directory(region, cfgTags []tag.Info) []tag.Info {
	out := append([]tag.Info(nil), region...)
	for i := range out {
		if i < len(cfgTags) && cfgTags[i].Name == out[i].Name {
			out[i].Device = cfgTags[i].Device
		}
	}
	return out
}

// Tags is the tag directory.
func (c *channel) Tags() []tag.Info { return c.tags }

// Snapshot copies a consistent image. While the supervisor has the
// partition down, the values it last wrote are stale (see markStale).
//
// Hot path: the bridge calls it every scan; it allocates nothing.
func (c *channel) Snapshot(dst []tag.Sample, text []string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.r.Snapshot(ctx, &c.img); err != nil {
		return 0, err
	}
	n := copy(dst, c.img.Samples)
	if !c.up {
		markStale(dst[:n])
	}
	if text != nil {
		copy(text, c.img.Text)
	}
	return c.img.Seq, nil
}

// image returns a copy of the latest image for the CLI, stale while the
// partition is down.
func (c *channel) image() (shm.Image, error) {
	var img shm.Image
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.r.Snapshot(ctx, &img)
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if !up {
		markStale(img.Samples)
	}
	return img, err
}

// markStale turns the good and uncertain values of an executive that is not
// running into stale ones (reason: partition not running): the region keeps
// the last image after the executive died, and SCADA must not take it for
// live data. The Sparkplug node reports a device whose values all went
// stale with DDEATH, and births it again once the restarted executive
// writes good values. Bad values stay bad with their own reason.
func markStale(s []tag.Sample) {
	for i := range s {
		if q := s[i].Quality; q == tag.Good || q == tag.Uncertain {
			s[i].Quality, s[i].Reason = tag.Stale, tag.NotRunning
		}
	}
}

func (c *channel) setUp(up bool, why string) {
	c.mu.Lock()
	c.up, c.down = up, why
	c.mu.Unlock()
}

// Health is the executive's state and the tasks' latency percentiles; a
// partition the supervisor has declared down is Down whatever the region
// still says.
func (c *channel) Health() bridge.Health {
	hb := c.r.Heartbeat()
	c.mu.Lock()
	up, why := c.up, c.down
	c.mu.Unlock()
	h := bridge.Health{State: plantState(hb.State), Cycle: hb.Cycle, RT: hb.RTMode == shm.RTFull, RTReason: hb.RTReason}
	if !up {
		h.State, h.Fault = bridge.Down, why
	}
	if hb.State == shm.StateFaulted {
		h.Fault = fmt.Sprintf("fault code %d", hb.Fault)
	}
	for i, t := range c.tasks {
		th := bridge.TaskHealth{Name: t.Name, Period: t.Period}
		if i < len(hb.Overruns) {
			th.Overruns = hb.Overruns[i]
		}
		if wake, exec, err := c.r.Histograms(i); err == nil {
			th.Cycles = uint64(wake.TotalCount())
			th.Wakeup = percentiles(wake.ValueAtQuantile, wake.Max())
			th.Exec = percentiles(exec.ValueAtQuantile, exec.Max())
		}
		h.Tasks = append(h.Tasks, th)
	}
	return h
}

func percentiles(at func(float64) int64, max int64) bridge.Percentiles {
	return bridge.Percentiles{P50: time.Duration(at(50)), P99: time.Duration(at(99)), P999: time.Duration(at(99.9)), Max: time.Duration(max)}
}

func plantState(s shm.State) bridge.State {
	switch s {
	case shm.StateBooting:
		return bridge.Booting
	case shm.StateRunning:
		return bridge.Running
	case shm.StateSafe:
		return bridge.Safe
	case shm.StateStopping:
		return bridge.Stopping
	case shm.StateFaulted:
		return bridge.Faulted
	}
	return bridge.Down
}

// Write sends a tag write through the command ring and waits for the
// executive's answer.
func (c *channel) Write(ctx context.Context, w bridge.Write) (bridge.Result, error) {
	infos := c.tags
	if w.ID < 0 || int(w.ID) >= len(infos) {
		return bridge.Result{}, bridge.ErrUnknownTag
	}
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if !up {
		return bridge.Result{}, fmt.Errorf("deploy: %w", bridge.ErrNotRunning)
	}
	cmd := shm.Command{Kind: shm.CmdWriteTag, Tag: w.ID, Value: w.Value, Origin: shm.NewOrigin(w.Source + ":" + w.Who)}
	if infos[w.ID].Type == "string" {
		cmd.IsText, cmd.Text = true, []byte(w.Text)
	}
	old, _ := c.image()
	res, err := c.r.Do(ctx, cmd)
	out := bridge.Result{Cycle: res.Cycle}
	if int(w.ID) < len(old.Samples) {
		out.Old, out.OldText = old.Samples[w.ID], old.Text[w.ID]
	}
	out.Old.Value = res.Old
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		switch reason := plantErr(err); reason {
		case bridge.ErrBusy, bridge.ErrNotRunning:
			// Not a decision of the executive: the ring is full or it is not there.
			return out, fmt.Errorf("deploy: write %s: %w", infos[w.ID].Name, reason)
		default:
			return out, &bridge.RejectedError{Cycle: res.Cycle, Reason: reason}
		}
	}
	return out, nil
}

func plantErr(err error) error {
	switch {
	case errors.Is(err, shm.ErrUnknownTag):
		return bridge.ErrUnknownTag
	case errors.Is(err, shm.ErrReadOnly):
		return bridge.ErrReadOnly
	case errors.Is(err, shm.ErrOutOfRange):
		return bridge.ErrOutOfRange
	case errors.Is(err, shm.ErrType):
		return bridge.ErrBadValue
	case errors.Is(err, shm.ErrBusy):
		return bridge.ErrBusy
	case errors.Is(err, shm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return bridge.ErrNotRunning
	}
	return bridge.ErrRejected
}

// Read is the supervisor's heartbeat.
func (c *channel) Read() (uint64, supervisor.ExecState, error) {
	hb := c.r.Heartbeat()
	switch hb.State {
	case shm.StateRunning:
		return hb.Cycle, supervisor.ExecRunning, nil
	case shm.StateSafe:
		return hb.Cycle, supervisor.ExecSafe, nil
	case shm.StateStopping:
		return hb.Cycle, supervisor.ExecStopping, nil
	case shm.StateFaulted:
		return hb.Cycle, supervisor.ExecFaulted, nil
	}
	return hb.Cycle, supervisor.ExecBooting, nil
}

// TaskStats are the tasks' counters and latency for mkrt status.
func (c *channel) TaskStats() []supervisor.TaskStats {
	h := c.Health()
	out := make([]supervisor.TaskStats, len(h.Tasks))
	for i, t := range h.Tasks {
		out[i] = supervisor.TaskStats{Name: t.Name, Period: t.Period, Cycles: t.Cycles, Overruns: t.Overruns, P50: t.Wakeup.P50, P99: t.Wakeup.P99, Max: t.Wakeup.Max}
	}
	return out
}

// withRT takes the real-time outcome from the executive's heartbeat: only
// the executive knows what it got (in a VM or a second kernel the backend
// cannot see it).
func (c *channel) withRT(s supervisor.Status) supervisor.Status {
	hb := c.r.Heartbeat()
	switch hb.RTMode {
	case shm.RTFull:
		s.RT, s.RTWhy = true, ""
	case shm.RTDegraded:
		s.RT, s.RTWhy = false, hb.RTReason
	}
	return s
}

// awaitRT waits, at most d, until the executive has reported its
// real-time outcome.
func (c *channel) awaitRT(d time.Duration) {
	deadline := time.Now().Add(d)
	for c.r.Heartbeat().RTMode == shm.RTUnknown && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
