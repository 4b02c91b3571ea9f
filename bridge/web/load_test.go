package web_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mkrt/mkrt/bridge/web"
)

// TestBrowserLoad: the Tags page of 10,000 tags, 1,000 of which change
// every 10 ms, keeps up in chromium: it takes every live event and spends
// less than half its time drawing; the figures are logged. -short skips it.
func TestBrowserLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("web: the 10,000-tag browser load test is skipped with -short")
	}
	exe := chromium(t)
	p := web.BigPlant(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	web.RunProgram(ctx, p)
	srv, err := web.New(web.Config{Auth: web.Users{"v": {Secret: "pw", Role: web.Viewer}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run(ctx) // for its live feed; the pages come from ts
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible("#login"),
		chromedp.SetValue("#user", "v"), chromedp.SetValue("#password", "pw"), chromedp.Click("#login-button"),
		chromedp.WaitVisible("#app"), chromedp.Navigate(ts.URL+"/#tags"), chromedp.WaitVisible(`tr[data-tag="t09999"]`)); err != nil {
		t.Fatal(err)
	}
	type stats struct {
		Events  int     `json:"events"`
		Updates int     `json:"updates"`
		MS      float64 `json:"ms"`
		Max     float64 `json:"max"`
	}
	read := func() stats {
		s, err := chromedp.Run(bctx, chromedp.Evaluate[stats]("window.hmiStats"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	time.Sleep(time.Second)
	s0 := read()
	v0, _ := chromedp.Run(bctx, chromedp.Text(`tr[data-tag="t00000"] td.val`))
	const span = 5 * time.Second
	time.Sleep(span)
	s1 := read()
	v1, _ := chromedp.Run(bctx, chromedp.Text(`tr[data-tag="t00000"] td.val`))
	ups := s1.Updates - s0.Updates
	if ups == 0 || v0 == v1 {
		t.Fatalf("the table did not update: %d updates, t00000 %q then %q", ups, v0, v1)
	}
	events := float64(s1.Events-s0.Events) / span.Seconds()
	busy := (s1.MS - s0.MS) / float64(span.Milliseconds())
	t.Logf("10,000 tags, 1,000 changing every 10 ms: %.1f live events/s (%.0f tag updates/s) received, drawn in %.1f page updates/s of %.1f ms on average (%.1f ms at most): the table takes %.0f%% of the page's time",
		events, events*web.BigChanging, float64(ups)/span.Seconds(), (s1.MS-s0.MS)/float64(ups), s1.Max, 100*busy)
	// The feed sends 4 events a second; the page must take every one
	// (changes between two drawings are drawn together) and have time left.
	if events < 3 || busy > 0.5 {
		t.Fatalf("the table does not keep up: %.1f events/s, busy %.0f%% of the time", events, 100*busy)
	}
}
