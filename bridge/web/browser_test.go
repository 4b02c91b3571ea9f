package web_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/bridge/web"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// chromium is the browser the HMI is tested in, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("web: chromium not installed (Debian package chromium): browser test of the HMI skipped")
	return ""
}

// artifacts is where the test writes its screenshots: $MKRT_ARTIFACTS
// when set, else the test's temporary directory.
func artifacts(t *testing.T) string {
	if d := os.Getenv("MKRT_ARTIFACTS"); d != "" {
		d = filepath.Join(d, "web")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// tankDemo is the tank demo's config with free loopback ports and a
// faster trend, and where the bridge keeps its state.
func tankDemo(t *testing.T) (*configs.Config, string) {
	t.Helper()
	text, err := os.ReadFile("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, r := range [][2]string{
		{"listen: 127.0.0.1:11883", "listen: 127.0.0.1:%d"},
		{"listen: 127.0.0.1:15021", "listen: 127.0.0.1:%d"},
		{"listen: 127.0.0.1:9102", "listen: 127.0.0.1:%d"},
		{"listen: 127.0.0.1:18080", "listen: 127.0.0.1:%d\n    trend_every: 100ms"},
	} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("tank-level.yaml: %q occurs %d times, want once", r[0], strings.Count(s, r[0]))
		}
		s = strings.Replace(s, r[0], fmt.Sprintf(r[1], bridgetest.FreePort(t)), 1)
	}
	cfg, err := configs.LoadBytes("tank-level.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, t.TempDir()
}

// simulate moves the fake plant like the tank: the level swings through
// the high alarm's limit, the alarm block's outputs follow it (unacked
// turns on with a raised alarm and off at a rising edge of the ack tag).
func simulate(ctx context.Context, p *bridgetest.Plant, cfg *configs.Config) {
	tt, _ := cfg.TagTable()
	id := func(name string) tag.ID {
		v, ok := tt.Lookup(name)
		if !ok {
			panic("no tag " + name)
		}
		return v
	}
	level, high, active, unacked, ack := id("level"), id("level_high"), id("level_alarm"), id("level_alarm_unacked"), id("level_alarm_ack")
	for i, in := range tt.Info {
		if in.Device != "" {
			p.Set(tag.ID(i), 0)
		}
	}
	start := time.Now()
	var was, ackWas bool
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			x := 2.0 + 0.9*math.Sin(time.Since(start).Seconds()/1.5)
			p.Set(level, x)
			b := 0.0
			if x > 2.6 {
				b = 1
			}
			p.Set(high, b)
			p.Set(active, b)
			ackOn := p.Value(ack).Value != 0
			switch {
			case b != 0 && !was:
				p.Set(unacked, 1)
			case ackOn && !ackWas:
				p.Set(unacked, 0)
			}
			was, ackWas = b != 0, ackOn
		}
	}()
}

// TestBrowser drives the HMI of a running bridge over the tank demo's
// config and a simulated plant (the fake executive, its level swinging
// through the high alarm's limit) in headless chromium; see browse.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	cfg, state := tankDemo(t)
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.Start(ctx, 20*time.Millisecond)
	simulate(ctx, p, cfg)
	runBridge(t, ctx, cfg, p, state)
	sp := mustID(t, cfg, "level_sp")
	browse(t, exe, hmi{url: web.URL(cfg.Bridge.Web.Listen, false), audit: filepath.Join(state, "audit.jsonl"), out: artifacts(t),
		setpoint: "2.2", plantSetpoint: func() float64 { return p.Value(sp).Value }, alarmWithin: 20 * time.Second,
		fault: func(on bool) {
			if on {
				p.SetState(wire.Faulted, "overrun")
			} else {
				p.SetState(wire.Running, "")
			}
		}})
}

// runBridge runs a bridge (and so its HMI) over p with cfg until ctx ends
// or the test does; a Run error fails the test.
func runBridge(t *testing.T, ctx context.Context, cfg *configs.Config, p plant.Plant, state string) *bridge.Bridge {
	t.Helper()
	b, err := bridge.New(cfg, p, bridge.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	bctx, stop := context.WithCancel(ctx)
	go func() { done <- b.Run(bctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return b
}

// hmi is a running HMI to browse.
type hmi struct {
	url, audit, out string
	// setpoint is what the writer writes to level_sp.
	setpoint string
	// plantSetpoint, when set, reads level_sp from the plant.
	plantSetpoint func() float64
	// alarmWithin is how long the high-level alarm may take to appear
	// after the write.
	alarmWithin time.Duration
	// fault, when set, faults the executive (true) or has it run again.
	fault func(bool)
}

// browse logs in to the HMI at h.url in headless chromium (exe). Without
// login only the form shows; the viewer sees the level change and its
// trend draw and cannot write; the writer changes level_sp and sees the
// cycle it was applied at and the new value, then the write on the Audit
// page and in audit.jsonl; the high-level alarm appears, read-only (it has
// no acknowledge tag), and the writer acknowledges the level alarm, whose
// write to level_alarm_ack is on the Audit page and in audit.jsonl. A
// screenshot of each page goes to h.out.
func browse(t *testing.T, exe string, h hmi) {
	waitHTTP(t, h.url)
	out, url := h.out, h.url
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))...)
	defer acancel()
	bctx2, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	fail := func(what string, err error) {
		t.Helper()
		shot(t, bctx2, filepath.Join(out, "failed.png"))
		t.Fatalf("%s: %v (screenshot of the page: %s)", what, err, filepath.Join(out, "failed.png"))
	}
	// The first action starts the browser, whose life is bctx2's.
	if err := chromedp.Do(bctx2, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	runFor := func(d time.Duration, what string, as ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx2, d)
		defer cancel()
		if err := chromedp.Do(c, as...); err != nil {
			fail(what, err)
		}
	}
	run := func(what string, as ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		runFor(20*time.Second, what, as...)
	}
	login := func(user, pass string) {
		t.Helper()
		run("log in as "+user,
			chromedp.Navigate(url),
			chromedp.WaitVisible("#login"),
			chromedp.SetValue("#user", user), chromedp.SetValue("#password", pass),
			chromedp.Click("#login-button"),
			chromedp.WaitVisible("#app"))
	}
	page := func(hash, ready, file string) {
		t.Helper()
		run("open "+hash, chromedp.Navigate(url+hash), chromedp.WaitVisible(ready))
		time.Sleep(700 * time.Millisecond) // a few live updates and a chart refresh
		shot(t, bctx2, filepath.Join(out, file))
	}

	// Without login: nothing but the form.
	run("open the HMI", chromedp.Navigate(url), chromedp.WaitVisible("#login"))
	if body := text(t, bctx2, "body", fail); strings.Contains(body, "level") {
		t.Fatalf("the login page shows plant data: %q", body)
	}
	shot(t, bctx2, filepath.Join(out, "login.png"))

	login("viewer", "viewer-demo")
	page("#tags", `tr[data-tag="level"] td.val`, "tags-viewer.png")
	v1 := text(t, bctx2, `tr[data-tag="level"] td.val`, fail)
	var v2 string
	for range 20 {
		if v2 = text(t, bctx2, `tr[data-tag="level"] td.val`, fail); v2 != v1 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if v1 == v2 || v1 == "—" {
		t.Fatalf("the level does not change on the Tags page: %q then %q for 6s", v1, v2)
	}
	// The viewer's write is refused.
	run("write as the viewer",
		chromedp.SetValue(`input[data-tag="level_sp"]`, h.setpoint),
		chromedp.Click(`button[data-set="level_sp"]`),
		chromedp.WaitVisible(`tr[data-tag="level_sp"] td.result.error`))
	if res := text(t, bctx2, `tr[data-tag="level_sp"] td.result`, fail); !strings.Contains(res, "read-only") {
		t.Fatalf("viewer's write: %q", res)
	}
	if h.plantSetpoint != nil {
		if v := h.plantSetpoint(); fmt.Sprint(v) == h.setpoint {
			t.Fatalf("the viewer's write changed level_sp to %v", v)
		}
	}
	shot(t, bctx2, filepath.Join(out, "tags-viewer-refused.png"))

	// The partition faults: the values are marked stale until it runs again.
	if h.fault != nil {
		h.fault(true)
		run("see the values marked stale", until(`document.querySelector('tr[data-tag="level"]').classList.contains("stale") && document.querySelector("#state").textContent.startsWith("faulted")`))
		shot(t, bctx2, filepath.Join(out, "tags-faulted.png"))
		h.fault(false)
		run("see the values live again", until(`!document.querySelector('tr[data-tag="level"]').classList.contains("stale") && document.querySelector("#state").textContent === "running"`))
	}

	// The trend draws.
	page("#trends?tags=level,level_sp&span=60000", "#trend", "trends.png")
	waitAttr(t, bctx2, "#trend", "data-points", 5)
	page("#latency", "#latency", "latency.png")
	page("#overview", ".cards", "overview.png")

	// The writer writes.
	run("log out", chromedp.Click("#logout"), chromedp.WaitVisible("#login"))
	login("scada", "scada-demo")
	page("#tags", `tr[data-tag="level_sp"]`, "tags-writer.png")
	run("write as the writer",
		chromedp.SetValue(`input[data-tag="level_sp"]`, h.setpoint),
		chromedp.Click(`button[data-set="level_sp"]`),
		chromedp.WaitVisible(`tr[data-tag="level_sp"] td.result.ok`))
	res := text(t, bctx2, `tr[data-tag="level_sp"] td.result`, fail)
	m := regexp.MustCompile(`applied at cycle (\d+)`).FindStringSubmatch(res)
	if m == nil {
		t.Fatalf("writer's write: %q", res)
	}
	cycle, _ := strconv.ParseUint(m[1], 10, 64)
	run("see the new setpoint in the table", until(`document.querySelector('tr[data-tag="level_sp"] td.val').textContent === "`+h.setpoint+`"`))
	if h.plantSetpoint != nil {
		if v := h.plantSetpoint(); fmt.Sprint(v) != h.setpoint {
			t.Fatalf("level_sp is %v after the write of %s", v, h.setpoint)
		}
	}
	shot(t, bctx2, filepath.Join(out, "tags-writer-applied.png"))

	// The write on the Audit page and in audit.jsonl.
	run("see the write on the Audit page", chromedp.Navigate(url+"#audit"), chromedp.WaitVisible("#audit"),
		chromedp.SetValue("#audit-filter", "level_sp"),
		until(`[...document.querySelectorAll("#audit tbody tr")].some(r => r.textContent.includes("scada") && r.textContent.includes("level_sp") && r.textContent.includes("`+m[1]+`"))`))
	shot(t, bctx2, filepath.Join(out, "audit.png"))
	log, err := os.ReadFile(h.audit)
	if err != nil {
		t.Fatal(err)
	}
	var viewerRefused, scadaApplied bool
	for _, l := range strings.Split(string(log), "\n") {
		viewerRefused = viewerRefused || strings.Contains(l, `"who":"viewer"`) && strings.Contains(l, `"refused":true`) && strings.Contains(l, `"protocol":"web"`)
		scadaApplied = scadaApplied || strings.Contains(l, `"who":"scada"`) && strings.Contains(l, `"ok":true`) && strings.Contains(l, fmt.Sprintf(`"cycle":%d`, cycle))
	}
	if !viewerRefused || !scadaApplied {
		t.Fatalf("audit.jsonl lacks the viewer's refusal (%v) or scada's write at cycle %d (%v):\n%s", viewerRefused, cycle, scadaApplied, log)
	}

	// The alarm appears: level_high read-only, level_alarm acknowledged
	// through its ack tag, the write audited.
	runFor(h.alarmWithin+5*time.Second, "see the high-level alarm", chromedp.Navigate(url+"#alarms"),
		chromedp.WaitVisible(`tr.active[data-alarm="level_high"]`))
	if ack := text(t, bctx2, `tr[data-alarm="level_high"] td:last-child`, fail); !strings.Contains(ack, "no level_high_ack tag") {
		t.Fatalf("acknowledge cell: %q", ack)
	}
	shot(t, bctx2, filepath.Join(out, "alarms.png"))
	run("acknowledge the level alarm", until(`(() => {
		const b = document.querySelector('button[data-ack="level_alarm"]');
		if (b && !window.ackClicked) { window.ackClicked = true; b.click(); }
		return [...document.querySelectorAll("#recent tbody tr")].some(r => r.textContent.includes("level_alarm") && r.textContent.includes("acknowledged") && r.textContent.includes("scada"));
	})()`))
	shot(t, bctx2, filepath.Join(out, "alarms-acknowledged.png"))
	run("see the acknowledge on the Audit page", chromedp.Navigate(url+"#audit"), chromedp.WaitVisible("#audit"),
		chromedp.SetValue("#audit-filter", "level_alarm_ack"),
		until(`[...document.querySelectorAll("#audit tbody tr")].some(r => r.textContent.includes("scada") && r.textContent.includes("level_alarm_ack"))`))
	log, err = os.ReadFile(h.audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"tag":"level_alarm_ack"`) || !regexp.MustCompile(`"who":"scada"[^\n]*"tag":"level_alarm_ack"[^\n]*"ok":true`).Match(log) {
		t.Fatalf("audit.jsonl lacks scada's acknowledge of level_alarm:\n%s", log)
	}
	t.Logf("screenshots in %s", out)
}

// waitHTTP waits until url answers.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if i > 300 {
			t.Fatalf("the HMI at %s does not answer: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustID(t *testing.T, cfg *configs.Config, name string) tag.ID {
	t.Helper()
	tt, _ := cfg.TagTable()
	id, ok := tt.Lookup(name)
	if !ok {
		t.Fatalf("no tag %s", name)
	}
	return id
}

// waitAttr waits until the numeric attribute of sel reaches min.
func waitAttr(t *testing.T, ctx context.Context, sel, attr string, min int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		a, err := chromedp.Run(c, chromedp.AttributeValue(sel, attr))
		cancel()
		v := a.Value
		if n, _ := strconv.Atoi(v); err == nil && a.Exists && n >= min {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s is %q (%v), want at least %d", sel, attr, v, err, min)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot writes a screenshot of the whole page to file.
func shot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", file, err)
		return
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Error(err)
	}
}

// text is the text of the element sel.
func text(t *testing.T, ctx context.Context, sel string, fail func(string, error)) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Text(sel))
	if err != nil {
		fail("read "+sel, err)
	}
	return s
}

// until waits, up to 10s, for the JavaScript expression js to be true.
func until(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
		return err
	})
}
