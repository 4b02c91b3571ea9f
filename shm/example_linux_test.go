package shm_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Example shows both sides: the host creates the region file, the executive
// attaches as the writer and runs a cycle, the bridge reads the image and
// sends a command.
func Example() {
	dir, _ := os.MkdirTemp("", "mkrt-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Both sides compute the layout from the same compiled config; here by
	// hand: one writable setpoint, one task.
	params := shm.Params{
		Tags:      []tag.Info{{Name: "setpoint", Type: tag.Float64, Unit: "m", Writable: true, Min: 0, Max: 5}},
		Tasks:     []shm.Task{{Name: "level", Period: 10 * time.Millisecond}},
		Partition: "line1",
	}
	params.ConfigHash[0] = 1 // cfg.Hash() in real use
	layout, err := shm.NewLayout(params)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Host side: create /dev/shm/<name> (here in a temp dir) with mode 0600.
	path := filepath.Join(dir, "mkrt-line1")
	hostRegion, err := shm.Open(shm.File(path, layout.Size(), true))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer hostRegion.Close()

	// Executive side: attach as the writer (formats the blank region).
	execRegion, _ := shm.Open(shm.File(path, 0, false))
	defer execRegion.Close()
	w, err := shm.AttachWriter(ctx, execRegion, layout, shm.WriterOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	samples := []tag.Sample{{Value: 2.5, Quality: tag.Good}}

	// Bridge side: attach as the reader and queue a write.
	r, err := shm.AttachReader(hostRegion, layout, shm.ReaderOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	id, _ := r.Submit(wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(3), Origin: wire.NewOrigin("mqtt:operator")})

	// One executive cycle: apply commands, publish, beat, record timing.
	var cmd wire.Command
	for w.PollCommand(&cmd) {
		res := wire.Result{ID: cmd.ID, Cycle: 1, Status: wire.CheckTagWrite(params.Tags, cmd.Tag, cmd.Value), Old: samples[cmd.Tag].Value}
		if res.Status == wire.Applied {
			samples[cmd.Tag].Value = cmd.Value.Num
		}
		w.Reply(res)
	}
	w.Publish(1, samples, nil)
	w.Beat(1, 0)
	w.SetState(wire.Running, 0)
	w.RecordWakeup(0, 12_000)

	// The bridge sees the result, the new image and the histogram.
	res, err := r.Await(ctx, id)
	fmt.Println("command:", res.Status, "old value", res.Old, err)
	var im shm.Image
	if err := r.Snapshot(ctx, &im); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("setpoint:", im.Samples[0].Value, im.Samples[0].Quality, "changed:", im.ChangedSince(0, nil))
	wake, _, _ := r.Histograms(0)
	fmt.Println("state:", r.Heartbeat().State, "wake-up samples:", wake.TotalCount(), "max within 0.1%:", math.Abs(float64(wake.Max()-12_000)) <= 12)
	// Output:
	// command: applied old value 2.5 <nil>
	// setpoint: 3 good changed: [0]
	// state: running wake-up samples: 1 max within 0.1%: true
}
