package plant

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Region is the production Plant: a partition's shared region read through
// its shm.Reader. It is also the supervisor's heartbeat (Read). While the
// supervisor has the partition down (SetUp(false, why)), the image the
// region still holds reads stale and writes are refused with
// wire.ErrNotRunning.
type Region struct {
	r     *shm.Reader
	tasks []shm.Task

	mu   sync.Mutex
	img  shm.Image
	up   bool // the supervisor declared the partition up
	down string
}

// NewRegion reads the partition through r.
func NewRegion(r *shm.Reader) *Region {
	return &Region{r: r, tasks: r.Tasks()}
}

// Reader is the region's reader.
func (c *Region) Reader() *shm.Reader { return c.r }

// Tags is the tag directory.
func (c *Region) Tags() []tag.Info { return c.r.Tags() }

// Snapshot copies a consistent image; stale while the partition is down
// (see MarkStale).
//
// Hot path: the bridge calls it every scan; it allocates nothing.
func (c *Region) Snapshot(dst []tag.Sample, text []string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.r.Snapshot(ctx, &c.img); err != nil {
		return 0, err
	}
	n := copy(dst, c.img.Samples)
	if !c.up {
		MarkStale(dst[:n])
	}
	if text != nil {
		copy(text, c.img.Text)
	}
	return c.img.Seq, nil
}

// Image returns a copy of the latest image, stale while the partition is
// down.
func (c *Region) Image() (shm.Image, error) {
	var img shm.Image
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.r.Snapshot(ctx, &img)
	if up, _ := c.Up(); !up {
		MarkStale(img.Samples)
	}
	return img, err
}

// MarkStale turns the good and uncertain values of an executive that is not
// running into stale ones (reason: partition not running): the region keeps
// the last image after the executive died, and SCADA must not take it for
// live data. The Sparkplug node reports a device whose values all went
// stale with DDEATH, and births it again once the restarted executive
// writes good values. Bad values stay bad with their own reason.
func MarkStale(s []tag.Sample) {
	for i := range s {
		if q := s[i].Quality; q == tag.Good || q == tag.Uncertain {
			s[i].Quality, s[i].Reason = tag.Stale, tag.NotRunning
		}
	}
}

// SetUp records whether the supervisor has the partition up, and why not.
func (c *Region) SetUp(up bool, why string) {
	c.mu.Lock()
	c.up, c.down = up, why
	c.mu.Unlock()
}

// Up reports whether the supervisor has the partition up, and why not.
func (c *Region) Up() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.down
}

// Health is the executive's state and the tasks' latency percentiles; a
// partition the supervisor has declared down is wire.Down whatever the
// region still says.
func (c *Region) Health() Health {
	hb := c.r.Heartbeat()
	h := Health{State: hb.State, Cycle: hb.Cycle, RT: hb.RTMode == wire.RTFull, RTReason: hb.RTReason}
	if hb.State == wire.Faulted {
		h.Fault = hb.Fault.String()
	}
	if up, why := c.Up(); !up {
		h.State, h.Fault = wire.Down, why
	}
	for i, t := range c.tasks {
		th := TaskHealth{Name: t.Name, Period: t.Period}
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

func percentiles(at func(float64) int64, max int64) Percentiles {
	return Percentiles{P50: time.Duration(at(50)), P99: time.Duration(at(99)), P999: time.Duration(at(99.9)), Max: time.Duration(max)}
}

// Write sends c through the command ring and waits for the executive's
// answer.
func (c *Region) Write(ctx context.Context, cmd wire.Command) (wire.Result, error) {
	if err := Check(c.Tags(), &cmd); err != nil {
		return wire.Result{}, err
	}
	if up, _ := c.Up(); !up {
		return wire.Result{}, fmt.Errorf("plant: write %s: %w", c.Tags()[cmd.Tag].Name, wire.ErrNotRunning)
	}
	cmd.Kind = wire.WriteTag
	res, err := c.r.Do(ctx, cmd)
	switch {
	case errors.Is(err, shm.ErrTimeout):
		return res, fmt.Errorf("plant: write %s: no answer: %w: %w", c.Tags()[cmd.Tag].Name, wire.ErrNotRunning, err)
	case err != nil:
		return res, err
	}
	return res, res.Err()
}

// Read is the supervisor's heartbeat: the cycle counter and the state.
func (c *Region) Read() (uint64, wire.State, error) {
	hb := c.r.Heartbeat()
	return hb.Cycle, hb.State, nil
}

// RT is the real-time outcome the executive published (only it knows what
// it got: in a VM or a second kernel the backend cannot see it).
func (c *Region) RT() (wire.RTMode, string) {
	hb := c.r.Heartbeat()
	return hb.RTMode, hb.RTReason
}

// AwaitRT waits, at most d, until the executive has reported its
// real-time outcome.
func (c *Region) AwaitRT(d time.Duration) {
	deadline := time.Now().Add(d)
	for c.r.Heartbeat().RTMode == wire.RTUnknown && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
