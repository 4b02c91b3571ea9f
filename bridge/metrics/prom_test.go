package metrics_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/metrics"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/wire"
)

func TestEndpoint(t *testing.T) {
	h := plant.Health{State: wire.Running, Cycle: 1234, RT: true, Tasks: []plant.TaskHealth{{Name: "fast", Overruns: 2,
		Wakeup: plant.Percentiles{P99: 21 * time.Microsecond}, Exec: plant.Percentiles{Max: 40 * time.Microsecond}}}}
	sp := new(metrics.Counters)
	sp.Published.Add(5)
	sp.Dropped.Add(1)
	sp.CountWrite(nil)
	sp.CountWrite(wire.ErrBusy)
	e, err := metrics.Listen("127.0.0.1:0", metrics.NewCollector(func() plant.Health { return h }, map[string]*metrics.Counters{"sparkplug": sp}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	resp, err := http.Get("http://" + e.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mkrt_executive_state{state="running"} 1`,
		`mkrt_executive_cycle 1234`,
		`mkrt_task_wakeup_latency_seconds{quantile="0.99",task="fast"} 2.1e-05`,
		`mkrt_task_execution_seconds{quantile="1",task="fast"} 4e-05`,
		`mkrt_task_overruns_total{task="fast"} 2`,
		`mkrt_bridge_published_total{component="sparkplug"} 5`,
		`mkrt_bridge_dropped_total{component="sparkplug"} 1`,
		`mkrt_bridge_writes_total{component="sparkplug",result="busy"} 1`,
		`mkrt_bridge_writes_total{component="sparkplug",result="ok"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s", want)
		}
	}
}

func TestClassify(t *testing.T) {
	for err, want := range map[error]metrics.WriteResult{
		nil: metrics.WriteOK, wire.ErrBusy: metrics.WriteBusy, wire.ErrOutOfRange: metrics.WriteInvalid, (&wire.RejectedError{Result: wire.Result{Status: wire.OutOfRange, Cycle: 9}}): metrics.WriteRejected,
		&wire.RejectedError{Result: wire.Result{Status: wire.OutOfRange}}: metrics.WriteInvalid, context.DeadlineExceeded: metrics.WriteTimeout,
		&wire.RejectedError{Result: wire.Result{Status: wire.NotRunning, Cycle: 9}}: metrics.WriteNotRunning,
	} {
		if got := metrics.Classify(err); got != want {
			t.Errorf("%v: %v want %v", err, got, want)
		}
	}
}
