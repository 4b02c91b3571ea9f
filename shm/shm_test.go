package shm_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestImageRoundTrip(t *testing.T) {
	p := shmtest.Params(5, 2, 1)
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	tab := shmtest.Table(p)
	tab.Samples[1] = tag.Sample{Value: 1.5, Quality: tag.Uncertain, Reason: tag.Timeout, Time: 123}
	tab.Text[5] = "hello"
	tab.Text[6] = "a string far longer than the thirty-two byte slot it goes into"
	seq1 := w.Publish(7, tab.Samples, tab.Text)

	var im shm.Image
	if err := r.Snapshot(ctxT(t), &im); err != nil {
		t.Fatal(err)
	}
	if im.Seq != seq1 || im.Cycle != 7 {
		t.Fatalf("seq %d cycle %d, want %d 7", im.Seq, im.Cycle, seq1)
	}
	if im.Samples[1] != tab.Samples[1] {
		t.Errorf("sample 1 = %+v, want %+v", im.Samples[1], tab.Samples[1])
	}
	if im.Text[5] != "hello" || im.Text[6] != tab.Text[6][:32] {
		t.Errorf("text = %q %q", im.Text[5], im.Text[6])
	}
	if got := im.ChangedSince(0, nil); len(got) != 7 {
		t.Errorf("first publish changed %v, want all 7 tags", got)
	}

	tab.Samples[3].Value = 9
	tab.Text[5] = "hellO"
	seq2 := w.Publish(8, tab.Samples, tab.Text)
	if err := r.Snapshot(ctxT(t), &im); err != nil {
		t.Fatal(err)
	}
	if got := im.ChangedSince(seq1, nil); len(got) != 2 || got[0] != 3 || got[1] != 5 {
		t.Errorf("changed since %d = %v, want [3 5]", seq1, got)
	}
	if im.Seq != seq2 || im.Samples[3].Value != 9 || im.Text[5] != "hellO" {
		t.Errorf("second image %+v", im)
	}
	if got := im.ChangedSince(seq2, nil); len(got) != 0 {
		t.Errorf("changed since the latest = %v", got)
	}
	w.PublishAll(9, tab.Samples, tab.Text)
	if err := r.Snapshot(ctxT(t), &im); err != nil {
		t.Fatal(err)
	}
	if got := im.ChangedSince(seq2, nil); len(got) != 7 {
		t.Errorf("PublishAll changed %v, want all", got)
	}
	// Shorter inputs are fine: the remaining tags keep their values.
	w.Publish(10, tab.Samples[:2], nil)
	if err := r.Snapshot(ctxT(t), &im); err != nil {
		t.Fatal(err)
	}
	if im.Samples[3].Value != 9 {
		t.Errorf("tag 3 lost its value: %+v", im.Samples[3])
	}
}

func TestDirectory(t *testing.T) {
	p := shmtest.Params(2, 1, 2)
	p.Tags[1].Device = "remote-io-7" // device tags carry their device across
	l := shmtest.Layout(t, p)
	_, r := shmtest.Pair(t, l)
	info := r.Tags()
	if len(info) != 3 {
		t.Fatalf("%d tags", len(info))
	}
	for i, in := range info {
		want := p.Tags[i]
		if in != want {
			t.Errorf("tag %d = %+v, want %+v", i, in, want)
		}
	}
	if tasks := r.Tasks(); len(tasks) != 2 || tasks[1] != p.Tasks[1] {
		t.Errorf("tasks = %+v", tasks)
	}
}

func TestHeartbeat(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(1, 0, 2))
	w, r := shmtest.Pair(t, l)
	hb := r.Heartbeat()
	if hb.State != wire.Booting || hb.BootID != w.BootID() || hb.Claims != 1 || hb.PID == 0 {
		t.Errorf("after attach: %+v", hb)
	}
	w.Beat(41, 5000)
	w.SetState(wire.Faulted, 17)
	w.SetRTMode(wire.RTDegraded, "no CAP_SYS_NICE: SCHED_OTHER")
	w.Overrun(1)
	w.Overrun(1)
	w.Overrun(5) // out of range: ignored
	hb = r.Heartbeat()
	if hb.Cycle != 41 || hb.MonoNs != 5000 || hb.State != wire.Faulted || hb.Fault != 17 ||
		hb.RTMode != wire.RTDegraded || hb.RTReason != "no CAP_SYS_NICE: SCHED_OTHER" || hb.Overruns[1] != 2 || hb.Overruns[0] != 0 {
		t.Errorf("heartbeat %+v", hb)
	}
	w.Close()
	if hb := r.Heartbeat(); hb.PID != 0 || hb.State != wire.Faulted {
		t.Errorf("after close: pid %d state %v (a faulted state stays)", hb.PID, hb.State)
	}
}

func TestCommands(t *testing.T) {
	p := shmtest.Params(3, 1, 0)
	p.Tags[2].Writable = false
	p.Tags[1].Min, p.Tags[1].Max = 0, 10
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	tab := shmtest.Table(p)
	tab.Samples[1].Value = 4
	ex := &shmtest.Executive{W: w, Tags: tab}
	origin := wire.NewOrigin("mqtt:operator")
	cases := []struct {
		cmd  wire.Command
		want error
	}{
		{wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(7), Origin: origin}, nil},
		{wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(11)}, wire.ErrOutOfRange},
		{wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(math.NaN())}, wire.ErrWrongType},
		{wire.Command{Kind: wire.WriteTag, Tag: 2, Value: wire.Number(1)}, wire.ErrReadOnly},
		{wire.Command{Kind: wire.WriteTag, Tag: 9, Value: wire.Number(1)}, wire.ErrUnknownTag},
		{wire.Command{Kind: wire.WriteTag, Tag: -1, Value: wire.Number(1)}, wire.ErrUnknownTag},
		{wire.Command{Kind: wire.WriteTag, Tag: 3, Value: wire.Number(1)}, wire.ErrWrongType},
		{wire.Command{Kind: wire.WriteTag, Tag: 3, Value: wire.Text("pump A")}, nil},
		{wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Text("x")}, wire.ErrWrongType},
		{wire.Command{Kind: wire.CommandKind(99)}, wire.ErrUnsupported},
	}
	for _, c := range cases {
		id, err := r.Submit(c.cmd)
		if err != nil {
			t.Fatal(err)
		}
		ex.Step()
		res, err := r.Await(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if res.ID != id || res.Cycle != ex.Cycle || !errors.Is(res.Err(), c.want) || (c.want == nil) != (res.Err() == nil) {
			t.Errorf("%+v: result %+v (%v), want %v", c.cmd, res, res.Err(), c.want)
		}
	}
	if tab.Samples[1].Value != 7 || tab.Text[3] != "pump A" {
		t.Errorf("applied values %v %q", tab.Samples[1].Value, tab.Text[3])
	}
	// The first write's old value came back.
	id, _ := r.Submit(wire.Command{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(2)})
	ex.Step()
	if res, _ := r.Await(ctxT(t), id); res.Old != 7 {
		t.Errorf("old value %v, want 7", res.Old)
	}
	// Text longer than the layout allows is refused before it reaches the ring.
	if _, err := r.Submit(wire.Command{Value: wire.Value{Text: make([]byte, l.CommandTextMax()+1), IsText: true}}); !errors.Is(err, shm.ErrInvalid) {
		t.Errorf("long text: %v", err)
	}
}

// TestCommandSlotsReused: Submit leaves the part of a slot past its first
// cache line alone when it already holds the bytes to write; commands of
// every shape, laps after each other in a two-slot ring, come out whole.
func TestCommandSlotsReused(t *testing.T) {
	p := shmtest.Params(2, 1, 0)
	p.Commands = 2
	w, r := shmtest.Pair(t, shmtest.Layout(t, p))
	long := strings.Repeat("o", wire.OriginMax)
	cmds := []wire.Command{
		{Kind: wire.WriteTag, Tag: 2, Value: wire.Text("a text that reaches into the next lines"), Origin: wire.NewOrigin(long)},
		{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(1), Origin: wire.NewOrigin("mqtt:a")},
		{Kind: wire.WriteTag, Tag: 2, Value: wire.Text("short"), Origin: wire.NewOrigin("mqtt:b")},
		{Kind: wire.WriteTag, Tag: 2, Value: wire.Text("a text that reaches into the next lines"), Origin: wire.NewOrigin(long[:44] + "xyz")},
		{Kind: wire.SetParam, Param: []byte("pid1.kp"), Value: wire.Number(2), Origin: wire.NewOrigin(long)},
		{Kind: wire.WriteTag, Tag: 0, Value: wire.Text(""), Origin: wire.NewOrigin("")},
		{Kind: wire.WriteTag, Tag: 1, Value: wire.Number(3), Origin: wire.NewOrigin(long)},
	}
	var got wire.Command
	var res [1]wire.Result
	for lap := 0; lap < 3; lap++ {
		for i, c := range cmds {
			id, err := r.Submit(c)
			if err != nil {
				t.Fatal(err)
			}
			if !w.PollCommand(&got) {
				t.Fatalf("lap %d command %d not taken", lap, i)
			}
			if got.ID != id || got.Kind != c.Kind || got.Tag != c.Tag || got.Origin != c.Origin || got.Value.Num != c.Value.Num ||
				got.Value.IsText != c.Value.IsText || string(got.Value.Text) != string(c.Value.Text) || string(got.Param) != string(c.Param) {
				t.Errorf("lap %d command %d: got %+v, want %+v", lap, i, got, c)
			}
			w.Reply(wire.Result{ID: got.ID, Status: wire.Applied})
			if r.Results(res[:]) != 1 {
				t.Fatalf("lap %d command %d: no result", lap, i)
			}
		}
	}
}

func TestCommandBusyAndTimeout(t *testing.T) {
	p := shmtest.Params(1, 0, 0)
	p.Commands = 4
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	var ids []uint64
	for i := 0; i < 4; i++ {
		id, err := r.Submit(wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(float64(i))})
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	if _, err := r.Submit(wire.Command{Kind: wire.WriteTag}); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("fifth submit into a ring of 4: %v, want ErrBusy", err)
	}
	if hb := r.Heartbeat(); hb.CommandsBusy != 1 {
		t.Errorf("busy count %d", hb.CommandsBusy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Await(ctx, ids[0]); !errors.Is(err, shm.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("await without an executive: %v", err)
	}
	// The executive takes commands only while results have room: the result
	// ring has the same capacity, so it takes all four, one at a time.
	var c wire.Command
	for i := 0; i < 4; i++ {
		if !w.PollCommand(&c) {
			t.Fatalf("poll %d failed", i)
		}
		if w.PollCommand(&c) {
			t.Fatal("second poll before reply succeeded")
		}
		w.Reply(wire.Result{ID: c.ID, Status: wire.Applied})
	}
	if w.Reply(wire.Result{}) {
		t.Error("reply without a command succeeded")
	}
	// Results out of order of awaiting are kept.
	for i := len(ids) - 1; i >= 0; i-- {
		if res, err := r.Await(ctxT(t), ids[i]); err != nil || res.ID != ids[i] {
			t.Errorf("await %d: %+v %v", ids[i], res, err)
		}
	}
}

func TestResultRingFullStallsCommands(t *testing.T) {
	p := shmtest.Params(1, 0, 0)
	p.Commands = 2
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	var c wire.Command
	for round := 0; round < 2; round++ {
		r.Submit(wire.Command{Kind: wire.WriteTag})
		if !w.PollCommand(&c) {
			t.Fatal("poll failed")
		}
		w.Reply(wire.Result{ID: c.ID, Status: wire.Applied})
	}
	// Two unread results fill the result ring: the next command waits in
	// the command ring instead of losing its result.
	r.Submit(wire.Command{Kind: wire.WriteTag})
	if w.PollCommand(&c) {
		t.Fatal("took a command with no room for its result")
	}
	var res [4]wire.Result
	if n := r.Results(res[:]); n != 2 {
		t.Fatalf("%d results", n)
	}
	if !w.PollCommand(&c) || c.ID != 3 {
		t.Fatalf("command after results drained: %+v", c)
	}
}

func TestEventsWrapAround(t *testing.T) {
	p := shmtest.Params(1, 0, 1)
	p.Events = 8
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	buf := make([]wire.Event, 5)
	next, got := 0, 0
	for round := 0; round < 1000; round++ {
		// Push a varying batch that fits, read a varying batch.
		for i := 0; i < round%7+1 && next-got < 8; i++ {
			if !w.PushEvent(wire.Event{Kind: wire.Log, Cycle: uint64(next), Task: 0, Tag: -1, Text: "event"}) {
				break
			}
			next++
		}
		n := r.Events(buf[:round%5+1])
		for _, e := range buf[:n] {
			if e.Cycle != uint64(got) || e.Text != "event" || e.Kind != wire.Log || e.Tag != -1 {
				t.Fatalf("event %d = %+v", got, e)
			}
			got++
		}
	}
	for n := r.Events(buf); n > 0; n = r.Events(buf) {
		for _, e := range buf[:n] {
			if e.Cycle != uint64(got) {
				t.Fatalf("event %d = %+v", got, e)
			}
			got++
		}
	}
	if got != next || got < 1000 {
		t.Fatalf("read %d of %d events", got, next)
	}
	if hb := r.Heartbeat(); hb.EventsDropped != 0 {
		t.Fatalf("dropped %d", hb.EventsDropped)
	}
	// A full ring drops and counts; what is in it survives.
	for i := 0; i < 8; i++ {
		w.PushEvent(wire.Event{Cycle: uint64(i)})
	}
	if w.PushEvent(wire.Event{Text: "lost"}) {
		t.Fatal("push into a full ring succeeded")
	}
	if hb := r.Heartbeat(); hb.EventsDropped != 1 {
		t.Fatalf("dropped %d, want 1", hb.EventsDropped)
	}
	if n := r.Events(make([]wire.Event, 20)); n != 8 {
		t.Fatalf("read %d after overflow, want 8", n)
	}
	long := string(make([]byte, 300))
	w.PushEvent(wire.Event{Text: long})
	if r.Events(buf[:1]); len(buf[0].Text) != wire.EventTextMax {
		t.Errorf("long text kept %d bytes, want %d", len(buf[0].Text), wire.EventTextMax)
	}
}

func TestAllocationFree(t *testing.T) {
	p := shmtest.Params(100, 4, 2)
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	tab := shmtest.Table(p)
	var cycle uint64
	var c wire.Command
	check := func(name string, f func()) {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
	check("Publish", func() {
		cycle++
		tab.Samples[3].Value = float64(cycle)
		tab.Text[101] = "changing text"[:cycle%13]
		w.Publish(cycle, tab.Samples, tab.Text)
	})
	check("PublishAll", func() { w.PublishAll(cycle, tab.Samples, tab.Text) })
	check("Beat+SetState", func() { w.Beat(cycle, 1); w.SetState(wire.Running, 0) })
	var im shm.Image
	r.Snapshot(context.Background(), &im)
	check("Snapshot", func() { r.Snapshot(context.Background(), &im) })
	check("SetRTMode", func() { w.SetRTMode(wire.RTFull, "") })
	check("Record", func() { w.RecordWakeup(1, 12345); w.RecordExec(0, 999); w.Overrun(0) })
	check("PushEvent", func() {
		w.PushEvent(wire.Event{Kind: wire.AlarmRaise, Tag: 3, Text: "level high"})
		r.Events(make([]wire.Event, 0)) // keep the ring from filling
	})
	for i := 0; i < 64; i++ {
		r.Submit(wire.Command{Kind: wire.WriteTag, Tag: 101, Value: wire.Text("text")})
	}
	var res [1]wire.Result
	if n := testing.AllocsPerRun(50, func() {
		if w.PollCommand(&c) {
			wire.CheckTagWrite(tab.Info, c.Tag, c.Value)
			w.Reply(wire.Result{ID: c.ID, Status: wire.Applied})
		}
		r.Results(res[:])
	}); n != 0 {
		t.Errorf("PollCommand/Check/Reply allocate %v times", n)
	}
	cmd := wire.Command{Kind: wire.WriteTag, Tag: 101, Value: wire.Text("text"), Origin: wire.NewOrigin("mqtt:scada")}
	check("Submit+PollCommand+Reply+Results", func() {
		r.Submit(cmd)
		if w.PollCommand(&c) {
			w.Reply(wire.Result{ID: c.ID, Status: wire.Applied})
		}
		r.Results(res[:])
	})
}

func TestHistogramsThroughRegion(t *testing.T) {
	p := shmtest.Params(0, 0, 2)
	l := shmtest.Layout(t, p)
	w, r := shmtest.Pair(t, l)
	for i := int64(1); i <= 10000; i++ {
		w.RecordWakeup(1, i*100)
		w.RecordExec(1, 5000)
	}
	w.RecordWakeup(1, -5)               // clamped to 0
	w.RecordWakeup(1, int64(time.Hour)) // clamped to the highest
	w.RecordWakeup(7, 1)                // no such task: ignored
	wake, exec, err := r.Histograms(1)
	if err != nil {
		t.Fatal(err)
	}
	if wake.TotalCount() != 10002 || exec.TotalCount() != 10000 {
		t.Fatalf("totals %d %d", wake.TotalCount(), exec.TotalCount())
	}
	if p50 := wake.ValueAtQuantile(50); p50 < 499000 || p50 > 501000 {
		t.Errorf("p50 %d", p50)
	}
	if exec.Min() < 4995 || exec.Max() > 5005 {
		t.Errorf("exec min %d max %d", exec.Min(), exec.Max())
	}
	if _, _, err := r.Histograms(2); !errors.Is(err, shm.ErrInvalid) {
		t.Errorf("task 2: %v", err)
	}
	w0, e0, _ := r.Histograms(0)
	if w0.TotalCount() != 0 || e0.TotalCount() != 0 {
		t.Error("task 0 has counts")
	}
}
