package web

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/shm/tag"
)

// BenchmarkFeed is one live-feed tick of a plant of 10,000 tags of which
// 1,000 changed since the last tick, with 0 and 5 browsers on the live
// stream (real HTTP connections reading every event). It reports the
// tick's cost, the tag updates each browser received per tick and the
// streams dropped for being too slow (none is the goal).
func BenchmarkFeed(b *testing.B) {
	const n, changing = 10000, 1000
	info := make([]tag.Info, n)
	for i := range info {
		info[i] = tag.Info{Name: fmt.Sprintf("t%05d", i), Type: tag.Float64}
	}
	tt, err := tag.NewTable(info)
	if err != nil {
		b.Fatal(err)
	}
	for _, browsers := range []int{0, 5} {
		b.Run(fmt.Sprintf("browsers=%d", browsers), func(b *testing.B) {
			p := bridgetest.NewPlant(tt, 0)
			s, err := New(Config{Auth: Users{"v": {Secret: "pw", Role: Viewer}}}, p)
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(s.Handler())
			defer ts.Close()
			tok := s.sessions.create("v", Viewer)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var updates atomic.Int64
			for range browsers {
				req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events", nil)
				req.AddCookie(&http.Cookie{Name: s.cookieName(), Value: tok})
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				go func() {
					sc := bufio.NewScanner(resp.Body)
					sc.Buffer(make([]byte, 1<<20), 16<<20)
					for sc.Scan() {
						if l := sc.Text(); strings.HasPrefix(l, "data: [[") {
							updates.Add(int64(strings.Count(l, "],[") + 1))
						}
					}
				}()
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
				for i := range changing {
					p.Set(tag.ID(i*(n/changing)), v)
				}
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

// BenchmarkFeedLive runs the HMI for 5 s over a plant of 10,000 tags of
// which 1,000 change every 10 ms, with 0 and 5 browsers on the live stream,
// and reports the process's CPU (the changing plant's own cost included;
// compare with browsers=none, the plant alone) and the tag updates each
// browser received per second. Run it with -benchtime 1x.
func BenchmarkFeedLive(b *testing.B) {
	const n, changing = 10000, 1000
	info := make([]tag.Info, n)
	for i := range info {
		info[i] = tag.Info{Name: fmt.Sprintf("t%05d", i), Type: tag.Float64}
	}
	tt, err := tag.NewTable(info)
	if err != nil {
		b.Fatal(err)
	}
	for _, browsers := range []int{-1, 0, 5} {
		name := fmt.Sprintf("browsers=%d", browsers)
		if browsers < 0 {
			name = "browsers=none,hmi=off"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				p := bridgetest.NewPlant(tt, 0)
				ctx, cancel := context.WithCancel(context.Background())
				go func() { // the control program
					t := time.NewTicker(10 * time.Millisecond)
					defer t.Stop()
					for v := 0.0; ctx.Err() == nil; v++ {
						<-t.C
						for i := range changing {
							p.Set(tag.ID(i*(n/changing)), v)
						}
					}
				}()
				var updates atomic.Int64
				if browsers >= 0 {
					s, err := New(Config{Auth: Users{"v": {Secret: "pw", Role: Viewer}}}, p)
					if err != nil {
						b.Fatal(err)
					}
					ts := httptest.NewServer(s.Handler())
					go s.hub.run(ctx)
					tok := s.sessions.create("v", Viewer)
					for range browsers {
						req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events", nil)
						req.AddCookie(&http.Cookie{Name: s.cookieName(), Value: tok})
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							b.Fatal(err)
						}
						go func() {
							defer resp.Body.Close()
							sc := bufio.NewScanner(resp.Body)
							sc.Buffer(make([]byte, 1<<20), 16<<20)
							for sc.Scan() {
								if l := sc.Text(); strings.HasPrefix(l, "data: [[") {
									updates.Add(int64(strings.Count(l, "],[") + 1))
								}
							}
						}()
					}
					defer ts.Close()
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
