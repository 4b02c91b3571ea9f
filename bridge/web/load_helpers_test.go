package web

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/shm/tag"
)

// The load of the performance tests: BigTags tags, BigChanging of which
// change every 10 ms.
const BigTags, BigChanging = 10000, 1000

// BigPlant is a running plant of BigTags float64 tags t00000….
func BigPlant(tb testing.TB) *bridgetest.Plant {
	tb.Helper()
	info := make([]tag.Info, BigTags)
	for i := range info {
		info[i] = tag.Info{Name: fmt.Sprintf("t%05d", i), Type: tag.Float64, Unit: "m"}
	}
	tt, err := tag.NewTable(info)
	if err != nil {
		tb.Fatal(err)
	}
	return bridgetest.NewPlant(tt, 0)
}

// change sets the BigChanging changing tags of p to v.
func change(p *bridgetest.Plant, v float64) {
	for i := range BigChanging {
		p.Set(tag.ID(i*(BigTags/BigChanging)), v)
	}
}

// RunProgram changes them every 10 ms until ctx ends, as a control
// program would.
func RunProgram(ctx context.Context, p *bridgetest.Plant) {
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for v := 0.0; ctx.Err() == nil; v++ {
			<-t.C
			change(p, v)
		}
	}()
}

// browser opens a live stream of s at url, logged in with tok, and counts
// the tag updates it receives into n until ctx ends.
func browser(tb testing.TB, ctx context.Context, s *Server, url, tok string, n *atomic.Int64) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/events", nil)
	req.AddCookie(&http.Cookie{Name: s.cookieName(), Value: tok})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: [[") {
				n.Add(int64(strings.Count(l, "],[") + 1))
			}
		}
	}()
}
