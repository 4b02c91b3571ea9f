package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
)

// BenchmarkFeed is one live-feed tick of a plant of 10,000 tags of which
// 1,000 changed since the last tick, with 0 and 5 browsers on the live
// stream (real HTTP connections reading every event). It reports the
// tick's cost, the tag updates each browser received per tick and the
// streams dropped for being too slow (none is the goal).
func BenchmarkFeed(b *testing.B) {
	for _, browsers := range []int{0, 5} {
		b.Run(fmt.Sprintf("browsers=%d", browsers), func(b *testing.B) {
			p := BigPlant(b)
			s, ts, tok := feed(b, p)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var updates atomic.Int64
			for range browsers {
				browser(b, ctx, s, ts.URL, tok, &updates)
			}
			for s.hub.clientCount() < browsers {
				time.Sleep(time.Millisecond)
			}
			now := time.Unix(1e9, 0)
			v := 0.0
			s.hub.tick(now)
			time.Sleep(100 * time.Millisecond)
			updates.Store(0)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				v++
				change(p, v)
				b.StartTimer()
				now = now.Add(DefaultPoll)
				s.hub.tick(now)
			}
			b.StopTimer()
			time.Sleep(200 * time.Millisecond)
			if browsers > 0 {
				b.ReportMetric(float64(updates.Load())/float64(b.N)/float64(browsers), "updates/tick/browser")
				b.ReportMetric(float64(browsers-s.hub.clientCount()), "dropped")
			}
		})
	}
}

// feed is an HMI over p served by a test server, and a viewer's session.
func feed(b *testing.B, p *bridgetest.Plant) (*Server, *httptest.Server, string) {
	s, err := New(Config{Auth: Users{"v": {Secret: "pw", Role: Viewer}}}, p)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(ts.Close)
	return s, ts, s.sessions.create("v", Viewer)
}

// BenchmarkFeedLive runs the HMI for 5 s over a plant of 10,000 tags of
// which 1,000 change every 10 ms, with 0 and 5 browsers on the live stream,
// and reports the process's CPU (the changing plant's own cost included;
// compare with browsers=none, the plant alone) and the tag updates each
// browser received per second. Run it with -benchtime 1x.
func BenchmarkFeedLive(b *testing.B) {
	for _, browsers := range []int{-1, 0, 5} {
		name := fmt.Sprintf("browsers=%d", browsers)
		if browsers < 0 {
			name = "browsers=none,hmi=off"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				p := BigPlant(b)
				ctx, cancel := context.WithCancel(context.Background())
				RunProgram(ctx, p)
				var updates atomic.Int64
				if browsers >= 0 {
					s, ts, tok := feed(b, p)
					go s.hub.run(ctx)
					for range browsers {
						browser(b, ctx, s, ts.URL, tok, &updates)
					}
				}
				time.Sleep(time.Second)
				updates.Store(0)
				cpu0, t0 := cpuTime(), time.Now()
				time.Sleep(5 * time.Second)
				wall := time.Since(t0)
				b.ReportMetric(100*float64(cpuTime()-cpu0)/float64(wall), "cpu%")
				if browsers > 0 {
					b.ReportMetric(float64(updates.Load())/wall.Seconds()/float64(browsers), "updates/s/browser")
				}
				cancel()
			}
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
