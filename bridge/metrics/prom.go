package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/wire"
)

// Collector exposes the executive's health and the bridge's counters to
// Prometheus. Figures are read at scrape time.
type Collector struct {
	health     func() plant.Health
	components map[string]*Counters
	names      []string

	state, cycle, rt, wake, exec, overruns, cycles     *prometheus.Desc
	published, buffered, replayed, dropped, conn, wrts *prometheus.Desc
}

// NewCollector builds a collector over a health source and named counters
// (e.g. "sparkplug", "json", "modbus").
func NewCollector(health func() plant.Health, components map[string]*Counters) *Collector {
	c := &Collector{health: health, components: components}
	for n := range components {
		c.names = append(c.names, n)
	}
	sort.Strings(c.names)
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mkrt_"+name, help, labels, nil)
	}
	c.state = d("executive_state", "1 for the executive's current state", "state")
	c.cycle = d("executive_cycle", "the executive's cycle counter")
	c.rt = d("executive_realtime", "1 when the tasks run with real-time scheduling")
	c.wake = d("task_wakeup_latency_seconds", "wake-up latency percentiles of a task (quantile 1 is the maximum)", "task", "quantile")
	c.exec = d("task_execution_seconds", "execution time percentiles of a task (quantile 1 is the maximum)", "task", "quantile")
	c.overruns = d("task_overruns_total", "cycles that ran past their period", "task")
	c.cycles = d("task_cycles_total", "cycles run", "task")
	c.published = d("bridge_published_total", "messages published (MQTT) or requests answered (Modbus)", "component")
	c.buffered = d("bridge_buffered_total", "records written to the store-and-forward buffer", "component")
	c.replayed = d("bridge_replayed_total", "buffered records sent after reconnecting", "component")
	c.dropped = d("bridge_dropped_total", "records dropped because the buffer was full", "component")
	c.conn = d("bridge_connected", "1 while the component's connection or listener is up", "component")
	c.wrts = d("bridge_writes_total", "writes from SCADA by result", "component", "result")
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.cycle, c.rt, c.wake, c.exec, c.overruns, c.cycles, c.published, c.buffered, c.replayed, c.dropped, c.conn, c.wrts} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	h := c.health()
	for _, s := range wire.States {
		v := 0.0
		if s == h.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s.String())
	}
	ch <- prometheus.MustNewConstMetric(c.cycle, prometheus.CounterValue, float64(h.Cycle))
	rt := 0.0
	if h.RT {
		rt = 1
	}
	ch <- prometheus.MustNewConstMetric(c.rt, prometheus.GaugeValue, rt)
	for _, t := range h.Tasks {
		for _, q := range []struct {
			q    string
			w, e time.Duration
		}{{"0.5", t.Wakeup.P50, t.Exec.P50}, {"0.99", t.Wakeup.P99, t.Exec.P99}, {"0.999", t.Wakeup.P999, t.Exec.P999}, {"1", t.Wakeup.Max, t.Exec.Max}} {
			ch <- prometheus.MustNewConstMetric(c.wake, prometheus.GaugeValue, q.w.Seconds(), t.Name, q.q)
			ch <- prometheus.MustNewConstMetric(c.exec, prometheus.GaugeValue, q.e.Seconds(), t.Name, q.q)
		}
		ch <- prometheus.MustNewConstMetric(c.overruns, prometheus.CounterValue, float64(t.Overruns), t.Name)
		ch <- prometheus.MustNewConstMetric(c.cycles, prometheus.CounterValue, float64(t.Cycles), t.Name)
	}
	for _, n := range c.names {
		k := c.components[n]
		ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(k.Published.Load()), n)
		ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.CounterValue, float64(k.Buffered.Load()), n)
		ch <- prometheus.MustNewConstMetric(c.replayed, prometheus.CounterValue, float64(k.Replayed.Load()), n)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(k.Dropped.Load()), n)
		up := 0.0
		if k.Connected.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.conn, prometheus.GaugeValue, up, n)
		for r := WriteOK; r < nWriteResults; r++ {
			ch <- prometheus.MustNewConstMetric(c.wrts, prometheus.CounterValue, float64(k.Writes(r)), n, r.String())
		}
	}
}

// Endpoint serves /metrics on a listener.
type Endpoint struct {
	l   net.Listener
	srv *http.Server
}

// Listen opens the /metrics endpoint on addr (":0" picks a port) for c.
func Listen(addr string, c prometheus.Collector) (*Endpoint, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	reg.MustRegister(collectors.NewGoCollector())
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &Endpoint{l: l, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the endpoint's address.
func (e *Endpoint) Addr() net.Addr { return e.l.Addr() }

// Run serves until ctx ends.
func (e *Endpoint) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- e.srv.Serve(e.l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e.srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("metrics: serve: %w", err)
	}
}
