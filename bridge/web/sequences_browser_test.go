package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/web"
	"github.com/mkrt/mkrt/configs"
)

// TestBrowserSequences opens the batch mixer's Sequences page in headless
// chromium: the viewer sees the batch in its heat step and has no
// buttons; the writer holds it, sees the cycle the hold was applied at,
// and the plant's batch_hold is on.
func TestBrowserSequences(t *testing.T) {
	exe := chromium(t)
	yml, err := os.ReadFile("../../configs/examples/batch-mixer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(yml)
	for _, old := range []string{"listen: 127.0.0.1:11883", "listen: 127.0.0.1:15061", "listen: 127.0.0.1:18081"} {
		if strings.Count(s, old) != 1 {
			t.Fatalf("batch-mixer.yaml: %q occurs %d times, want once", old, strings.Count(s, old))
		}
		s = strings.Replace(s, old, fmt.Sprintf("listen: 127.0.0.1:%d", bridgetest.FreePort(t)), 1)
	}
	cfg, err := configs.LoadBytes("batch-mixer.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.Start(ctx, 20*time.Millisecond)
	p.Set(mustID(t, cfg, "batch_step"), 3) // heat
	hold := mustID(t, cfg, "batch_hold")
	state := t.TempDir()
	runBridge(t, ctx, cfg, p, state)
	url := web.URL(cfg.Bridge.Web.Listen, false)
	waitHTTP(t, url)

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 600))...)
	defer acancel()
	c, ccancel := chromedp.NewContext(actx)
	defer ccancel()
	out := artifacts(t)
	// The first action starts the browser, whose life is c's.
	if err := chromedp.Do(c, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	fail := func(what string, err error) {
		t.Helper()
		shot(t, c, filepath.Join(out, "sequences-failed.png"))
		t.Fatalf("%s: %v", what, err)
	}
	run := func(what string, as ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		rc, rcancel := context.WithTimeout(c, 20*time.Second)
		defer rcancel()
		if err := chromedp.Do(rc, as...); err != nil {
			fail(what, err)
		}
	}
	row := `tr[data-sequence="batch"]`
	login := func(user, pass string) {
		t.Helper()
		run("log in as "+user, chromedp.Navigate(url), chromedp.WaitVisible("#login"),
			chromedp.SetValue("#user", user), chromedp.SetValue("#password", pass),
			chromedp.Click("#login-button"), chromedp.WaitVisible("#app"),
			chromedp.Navigate(url+"#sequences"), chromedp.WaitVisible(row))
	}

	login("viewer", "viewer-demo")
	run("the heat step shown", until(`document.querySelector('`+row+`').textContent.includes("heat")`))
	if got := text(t, c, row, fail); strings.Contains(got, "Hold") || !strings.Contains(got, "viewers cannot command") {
		t.Fatalf("the viewer's row: %q, want no buttons", got)
	}
	run("log out", chromedp.Click("#logout"), chromedp.WaitVisible("#login"))

	login("scada", "scada-demo")
	run("hold the batch", chromedp.Click(`button[data-seq="batch:hold"]`), chromedp.WaitVisible(row+` td.result.ok`))
	if got := text(t, c, row+` td.result`, fail); !strings.HasPrefix(got, "hold at cycle ") {
		t.Fatalf("hold result %q, want the cycle it was applied at", got)
	}
	if v := p.Value(hold).Value; v != 1 {
		t.Fatalf("batch_hold is %v after the Hold button, want 1", v)
	}
	shot(t, c, filepath.Join(out, "sequences.png"))
}
