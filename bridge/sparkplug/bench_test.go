package sparkplug_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/sparkplug"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// BenchmarkImageToSubscriber: 10,000 tags, 1,000 of them changing every
// 10 ms (one op = one 10 ms round). Each change carries the time it was made
// in the image; a subscriber on mosquitto measures change → receipt.
// Reports the latency percentiles and the delivered fraction (1 = no
// backlog, nothing lost).
func BenchmarkImageToSubscriber(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) { benchImage(b, qos) })
	}
}

func benchImage(b *testing.B, qos byte) {
	const nTags, nChange, period = 10000, 1000, 10 * time.Millisecond
	br := bridgetest.Mosquitto(b)
	cfg := &configs.Config{}
	for i := 0; i < nTags; i++ {
		cfg.Tags = append(cfg.Tags, configs.Tag{Name: fmt.Sprintf("t%05d", i)})
	}
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Now()
	var mu sync.Mutex
	var lat []time.Duration
	received := 0
	sub, err := mqttc.Connect(context.Background(), mqttc.Options{Broker: br.URL(false), ClientID: "bench-sub"})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	sub.Subscribe(context.Background(), "spBv1.0/bench/NDATA/#", qos, func(_ string, payload []byte) {
		now := time.Since(base)
		pl := &sproto.Payload{}
		if proto.Unmarshal(payload, pl) != nil {
			return
		}
		mu.Lock()
		for _, m := range pl.Metrics {
			if v := m.GetDoubleValue(); v > 0 {
				lat = append(lat, now-time.Duration(v))
				received++
			}
		}
		mu.Unlock()
	})
	n, err := sparkplug.New(sparkplug.Config{Group: "bench", Node: "n1", QoS: qos, StoreDir: b.TempDir(), Poll: period, HealthPeriod: time.Hour,
		MQTT: mqttc.Options{Broker: br.URL(false), ClientID: "bench-node"}}, p)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for !n.Status().Born {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	tick := time.NewTicker(period)
	defer tick.Stop()
	sent := 0
	for r := 0; r < b.N; r++ {
		<-tick.C
		off := (r * nChange) % nTags
		for k := 0; k < nChange; k++ {
			// the value is the moment of the change (ns since base, exact in a float64)
			p.Set(tag.ID(off+k), float64(time.Since(base)))
		}
		sent += nChange
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := received
		mu.Unlock()
		if got >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		b.Fatal("nothing received")
	}
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(received)/float64(sent), "delivered")
	b.ReportMetric(float64(sent)/time.Since(base).Seconds(), "changes/s")
}
