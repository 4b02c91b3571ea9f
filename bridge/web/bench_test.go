package web

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
