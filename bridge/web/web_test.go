package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

const testConfig = `
metadata: {name: tank-test}
tags:
  - {name: level, unit: m, min: 0, max: 3}
  - {name: level_sp, initial: 2.5, min: 0, max: 5, unit: m, writable: true}
  - {name: level_high, type: bool}
  - {name: level_high_ack, type: bool, writable: true}
  - {name: level_low, type: bool}
  - {name: mode, type: string, length: 8, writable: true}
  - {name: level_unacked, type: bool}
tasks:
  - name: control
    period: 10ms
    blocks:
      - name: level_alarms
        type: alarm
        inputs: {in: level}
        params: {hi: 2.6, lo: 0.4}
        outputs: {hi: level_high, lo: level_low, unacked: level_unacked}
`

// rig is an HMI over the fake plant, its audit log and its users:
// viewer (read-only, plain password) and op (writer, bcrypt hash).
type rig struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	plant *bridgetest.Plant
	audit string
	cfg   *configs.Config
}

func newRig(t *testing.T, mod ...func(*Config)) *rig {
	t.Helper()
	cfg, err := configs.LoadBytes("test.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.Start(ctx, 5*time.Millisecond)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	al, err := audit.Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	hash, err := bcrypt.GenerateFromPassword([]byte("op-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := Users{"viewer": {Secret: "viewer-pass", Role: Viewer}, "op": {Secret: string(hash), Role: Writer}}
	c := Config{Auth: users, Config: cfg, Refuser: al, AuditPath: path, Poll: 10 * time.Millisecond}
	for _, m := range mod {
		m(&c)
	}
	srv, err := New(c, audit.Wrap(p, al))
	if err != nil {
		t.Fatal(err)
	}
	go srv.hub.run(ctx)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &rig{t: t, srv: srv, ts: ts, plant: p, audit: path, cfg: cfg}
}

// client is a browser-like client with its own cookie jar.
func (r *rig) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

func (r *rig) do(c *http.Client, method, path string, body any, hdr ...string) (int, map[string]any) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.ts.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	if len(out) == 0 && len(b) > 0 {
		out["body"] = string(b)
	}
	return resp.StatusCode, out
}

func (r *rig) login(user, pass string) *http.Client {
	r.t.Helper()
	c := r.client()
	if st, out := r.do(c, "POST", "/api/login", credentials{User: user, Password: pass}); st != 200 {
		r.t.Fatalf("login %s: %d %v", user, st, out)
	}
	return c
}

// stream opens the live stream of c's session for 5s and returns its lines.
func (r *rig) stream(c *http.Client) *bufio.Scanner {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", r.ts.URL+"/api/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		r.t.Fatalf("content type %q", ct)
	}
	return bufio.NewScanner(resp.Body)
}

func (r *rig) entries() []audit.Entry {
	var es []audit.Entry
	audit.Scan(r.audit, func(e audit.Entry) error { es = append(es, e); return nil }, nil)
	return es
}

// TestLoginRequired: without a session the HMI serves the login page and
// nothing of the plant.
func TestLoginRequired(t *testing.T) {
	r := newRig(t)
	c := r.client()
	for _, p := range []string{"/api/tags", "/api/events", "/api/trend?tags=level", "/api/overview", "/api/alarms", "/api/audit", "/api/me"} {
		if st, _ := r.do(c, "GET", p, nil); st != http.StatusUnauthorized {
			t.Errorf("GET %s without login: %d, want 401", p, st)
		}
	}
	st, out := r.do(c, "GET", "/", nil)
	if st != 200 || !strings.Contains(out["body"].(string), `id="login"`) || strings.Contains(out["body"].(string), "level_sp") {
		t.Fatalf("GET /: %d %v", st, out)
	}
	if st, _ := r.do(c, "POST", "/api/write", WriteRequest{Tag: "level_sp", Value: json.RawMessage("1")}); st != http.StatusUnauthorized {
		t.Fatalf("write without login: %d, want 401", st)
	}
	if len(r.plant.Applied()) != 0 {
		t.Fatal("a write without login reached the plant")
	}
}

// TestLoginLogout: a wrong password is refused, a right one gives an
// HttpOnly, SameSite=Strict session cookie, and logout ends the session on
// the server (the old cookie no longer works).
func TestLoginLogout(t *testing.T) {
	r := newRig(t)
	c := r.client()
	if st, _ := r.do(c, "POST", "/api/login", credentials{User: "op", Password: "wrong"}); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", st)
	}
	if st, _ := r.do(c, "POST", "/api/login", credentials{User: "nobody", Password: "op-pass"}); st != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", st)
	}
	rec := httptest.NewRecorder()
	r.srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/api/login", strings.NewReader(`{"user":"op","password":"op-pass"}`)))
	if rec.Code != 200 {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	ck := rec.Result().Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure || ck[0].Path != "/" || len(ck[0].Value) < 40 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, path /, a long random value", ck)
	}
	me := func() int {
		req := httptest.NewRequest("GET", "/api/me", nil)
		req.AddCookie(ck[0])
		rec := httptest.NewRecorder()
		r.srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if me() != 200 {
		t.Fatal("session not accepted")
	}
	req := httptest.NewRequest("POST", "/api/logout", nil)
	req.AddCookie(ck[0])
	r.srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
	if st := me(); st != http.StatusUnauthorized {
		t.Fatalf("after logout the old cookie still works: %d", st)
	}
}

// TestSessionCookieSecureWithTLS: over TLS the cookie is Secure and
// __Host- prefixed.
func TestSessionCookieSecureWithTLS(t *testing.T) {
	srv, err := New(Config{Auth: Users{"op": {Secret: "pw", Role: Writer}}, TLS: &tls.Config{}}, bridgetest.NewPlant(&tag.Table{}, 0))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "https://hmi/api/login", strings.NewReader(`{"user":"op","password":"pw"}`)))
	ck := rec.Result().Cookies()
	if rec.Code != 200 || len(ck) != 1 || !ck[0].Secure || !strings.HasPrefix(ck[0].Name, "__Host-") || rec.Header().Get("Strict-Transport-Security") == "" {
		t.Fatalf("TLS login: %d %+v %v", rec.Code, ck, rec.Header())
	}
}

// TestLoginRateLimited: after LoginBurst attempts from one address even
// the right password is refused with 429 and Retry-After; another address
// still logs in.
func TestLoginRateLimited(t *testing.T) {
	r := newRig(t)
	login := func(addr, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/login", strings.NewReader(`{"user":"viewer","password":"`+pass+`"}`))
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		r.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	for i := range LoginBurst {
		if rec := login("192.0.2.1:4000", "guess"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, rec.Code)
		}
	}
	rec := login("192.0.2.1:4001", "viewer-pass")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("attempt after the burst: %d %s, want 429 with Retry-After", rec.Code, rec.Body)
	}
	if rec := login("192.0.2.2:4000", "viewer-pass"); rec.Code != 200 {
		t.Fatalf("another address: %d", rec.Code)
	}
}

// TestCrossOriginWriteRefused: a write a browser sends from another site
// (Sec-Fetch-Site: cross-site, or an Origin that is not the HMI's) is
// refused with 403 before it reaches the plant, even with a valid session.
func TestCrossOriginWriteRefused(t *testing.T) {
	r := newRig(t)
	c := r.login("op", "op-pass")
	w := WriteRequest{Tag: "level_sp", Value: json.RawMessage("1.5")}
	if st, _ := r.do(c, "POST", "/api/write", w, "Sec-Fetch-Site", "cross-site"); st != http.StatusForbidden {
		t.Fatalf("cross-site write: %d, want 403", st)
	}
	if st, _ := r.do(c, "POST", "/api/write", w, "Origin", "http://evil.example"); st != http.StatusForbidden {
		t.Fatalf("write from another origin: %d, want 403", st)
	}
	if st, _ := r.do(c, "POST", "/api/ack", map[string]string{"alarm": "level_high"}, "Sec-Fetch-Site", "cross-site"); st != http.StatusForbidden {
		t.Fatalf("cross-site acknowledge: %d, want 403", st)
	}
	if n := len(r.plant.Applied()); n != 0 {
		t.Fatalf("%d cross-origin writes reached the plant", n)
	}
	if st, out := r.do(c, "POST", "/api/write", w, "Sec-Fetch-Site", "same-origin", "Origin", r.ts.URL); st != 200 {
		t.Fatalf("same-origin write: %d %v", st, out)
	}
}

// TestViewerWriteRefused: a read-only user's write is refused (403), never
// reaches the plant, and the audit records the refusal with the user.
func TestViewerWriteRefused(t *testing.T) {
	r := newRig(t)
	c := r.login("viewer", "viewer-pass")
	st, out := r.do(c, "POST", "/api/write", WriteRequest{Tag: "level_sp", Value: json.RawMessage("1.5")})
	if st != http.StatusForbidden || !strings.Contains(out["error"].(string), "read-only") {
		t.Fatalf("viewer write: %d %v", st, out)
	}
	if len(r.plant.Applied()) != 0 {
		t.Fatal("the viewer's write reached the plant")
	}
	es := r.entries()
	if len(es) != 1 || !es[0].Refused || es[0].Who != "viewer" || es[0].Source != "web" || es[0].Tag != "level_sp" {
		t.Fatalf("audit: %+v", es)
	}
}

// TestWriterWriteApplied: a writer's write is applied and answered with
// the cycle; the audit records it with the user as principal; a refusal
// by the write check comes back with its reason.
func TestWriterWriteApplied(t *testing.T) {
	r := newRig(t)
	c := r.login("op", "op-pass")
	st, out := r.do(c, "POST", "/api/write", WriteRequest{Tag: "level_sp", Value: json.RawMessage("1.5")})
	if st != 200 || out["ok"] != true || out["cycle"].(float64) < 1 {
		t.Fatalf("write: %d %v", st, out)
	}
	if v := r.plant.Value(1).Value; v != 1.5 {
		t.Fatalf("level_sp is %v", v)
	}
	es := r.entries()
	if len(es) != 1 || !es[0].OK || es[0].Who != "op" || es[0].Principal == nil || es[0].Principal.Protocol != "web" ||
		es[0].Cycle != uint64(out["cycle"].(float64)) {
		t.Fatalf("audit: %+v", es)
	}
	st, out = r.do(c, "POST", "/api/write", WriteRequest{Tag: "level_sp", Value: json.RawMessage("99")})
	if st != http.StatusConflict || out["status"] != "out of range" || !strings.Contains(out["error"].(string), "level_sp") {
		t.Fatalf("out of range: %d %v", st, out)
	}
	st, out = r.do(c, "POST", "/api/write", WriteRequest{Tag: "level", Value: json.RawMessage("1")})
	if st != http.StatusConflict || out["status"] != "read-only" {
		t.Fatalf("read-only tag: %d %v", st, out)
	}
	st, out = r.do(c, "POST", "/api/write", WriteRequest{Tag: "mode", Value: json.RawMessage(`"auto"`)})
	if st != 200 || out["ok"] != true {
		t.Fatalf("string write: %d %v", st, out)
	}
	if st, _ = r.do(c, "POST", "/api/write", WriteRequest{Tag: "nope", Value: json.RawMessage("1")}); st != http.StatusNotFound {
		t.Fatalf("unknown tag: %d", st)
	}
	if st, _ := r.do(c, "GET", "/api/audit?q=mode", nil); st != 200 {
		t.Fatalf("audit page: %d", st)
	}
	_, out = r.do(c, "GET", "/api/audit?q=mode", nil)
	if es := out["entries"].([]any); len(es) != 1 {
		t.Fatalf("audit filtered by mode: %v", es)
	}
}

// TestAlarms: an alarm block's output going true shows as an active alarm
// with its input's value; a writer acknowledges it with a write to its
// _ack tag (audited), a viewer cannot, and an alarm without an ack tag is
// read-only.
func TestAlarms(t *testing.T) {
	r := newRig(t)
	r.plant.Set(0, 2.8)
	r.plant.Set(6, 1) // level_unacked, as the alarm block sets it
	r.plant.Set(2, 1)
	wait(t, func() bool {
		_, out := r.do(r.login("viewer", "viewer-pass"), "GET", "/api/alarms", nil)
		as := out["alarms"].([]any)
		a := as[0].(map[string]any)
		return a["name"] == "level_high" && a["active"] == true && a["value"] == 2.8 && a["ackable"] == true
	})
	v := r.login("viewer", "viewer-pass")
	if st, _ := r.do(v, "POST", "/api/ack", map[string]string{"alarm": "level_high"}); st != http.StatusForbidden {
		t.Fatalf("viewer acknowledge: %d", st)
	}
	op := r.login("op", "op-pass")
	st, out := r.do(op, "POST", "/api/ack", map[string]string{"alarm": "level_high"})
	if st != 200 || out["ok"] != true {
		t.Fatalf("acknowledge: %d %v", st, out)
	}
	if r.plant.Value(3).Value != 1 {
		t.Fatal("level_high_ack not written")
	}
	_, out = r.do(op, "GET", "/api/alarms", nil)
	a := out["alarms"].([]any)[0].(map[string]any)
	if a["acked"] != true || a["acked_by"] != "op" {
		t.Fatalf("after acknowledge: %v", a)
	}
	if st, out := r.do(op, "POST", "/api/ack", map[string]string{"alarm": "level_low"}); st != http.StatusConflict || !strings.Contains(out["error"].(string), "level_low_ack") {
		t.Fatalf("acknowledge without an ack tag: %d %v", st, out)
	}
	es := r.entries()
	if len(es) != 2 || !es[0].Refused || es[0].Who != "viewer" || es[1].Tag != "level_high_ack" || es[1].Who != "op" || !es[1].OK {
		t.Fatalf("audit: %+v", es)
	}
	for _, a := range out["alarms"].([]any) {
		if a.(map[string]any)["name"] == "level_unacked" {
			t.Fatal("the alarm block's unacked output is listed as an alarm")
		}
	}
	// The alarm block acknowledges on a rising edge of ack: a second
	// acknowledge, with the ack tag still on, turns it off first.
	wait(t, func() bool {
		r.srv.hub.mu.Lock()
		defer r.srv.hub.mu.Unlock()
		return len(r.srv.hub.snap) > 3 && r.srv.hub.snap[3].Value == 1
	})
	if st, out := r.do(op, "POST", "/api/ack", map[string]string{"alarm": "level_high"}); st != 200 || out["ok"] != true {
		t.Fatalf("second acknowledge: %d %v", st, out)
	}
	es = r.entries()
	if len(es) != 4 || es[2].Tag != "level_high_ack" || fmt.Sprint(es[2].New) != "false" || !es[2].OK ||
		es[3].Tag != "level_high_ack" || fmt.Sprint(es[3].New) != "true" || !es[3].OK || r.plant.Value(3).Value != 1 {
		t.Fatalf("second acknowledge: want writes of 0 then 1 to level_high_ack, audit: %+v", es)
	}
}

// TestAlarmAckedElsewhere: an alarm block's unacked output turning off
// while its alarm is active (SCADA acknowledged over Modbus or MQTT) shows
// the alarm acknowledged by SCADA, with the event in the history.
func TestAlarmAckedElsewhere(t *testing.T) {
	r := newRig(t)
	v := r.login("viewer", "viewer-pass")
	alarm := func() map[string]any {
		_, out := r.do(v, "GET", "/api/alarms", nil)
		for _, a := range out["alarms"].([]any) {
			if a.(map[string]any)["name"] == "level_high" {
				return a.(map[string]any)
			}
		}
		t.Fatal("no alarm level_high")
		return nil
	}
	r.plant.Set(0, 2.8)
	r.plant.Set(6, 1) // level_unacked
	r.plant.Set(2, 1) // level_high
	wait(t, func() bool { return alarm()["active"] == true })
	time.Sleep(50 * time.Millisecond)
	if a := alarm(); a["acked"] == true {
		t.Fatalf("acknowledged while unacked is on: %v", a)
	}
	r.plant.Set(6, 0)
	wait(t, func() bool { a := alarm(); return a["acked"] == true && a["acked_by"] == "SCADA" })
	_, out := r.do(v, "GET", "/api/alarms", nil)
	if e := out["recent"].([]any)[0].(map[string]any); e["event"] != "acknowledged" || e["by"] != "SCADA" {
		t.Fatalf("newest event: %v", e)
	}
}

func wait(t *testing.T, ok func() bool) {
	t.Helper()
	for range 200 {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 2s")
}

// TestEventsStream: the live stream starts with the directory and every
// tag, then carries each change, the health and the alarms.
func TestEventsStream(t *testing.T) {
	r := newRig(t)
	sc := r.stream(r.login("viewer", "viewer-pass"))
	seen := map[string]bool{}
	set := false
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			seen[ev] = true
		}
		if seen["tags"] && seen["health"] && seen["alarms"] && !set {
			r.plant.Set(0, 1.234)
			set = true
		}
		if set && strings.HasPrefix(line, "data: [[0,1.234,") {
			return
		}
	}
	t.Fatalf("stream ended (%v) before the change arrived; events seen %v", sc.Err(), seen)
}

// TestTrendEndpoint: the trend of a tag comes from the ring, oldest first.
func TestTrendEndpoint(t *testing.T) {
	r := newRig(t, func(c *Config) { c.TrendEvery = time.Millisecond })
	r.plant.Set(0, 2)
	c := r.login("viewer", "viewer-pass")
	wait(t, func() bool {
		_, out := r.do(c, "GET", "/api/trend?tags=level,nope", nil)
		s := out["series"].([]any)
		return len(s) == 1 && len(s[0].(map[string]any)["v"].([]any)) >= 2
	})
}

func TestConfigUsers(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("hashed"), bcrypt.MinCost)
	os.WriteFile(filepath.Join(dir, "bridge.pw"), []byte("bridge-pw\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ops.htpasswd"), []byte("ops:"+string(hash)+"\n"), 0o600)
	m := configs.MQTT{Username: "mkrt", PasswordFile: "bridge.pw", Users: []configs.User{
		{Username: "viewer", Password: "v", ReadOnly: true},
		{Username: "ops", PasswordFile: "ops.htpasswd"},
	}}
	us, err := ConfigUsers(m, func(p string) string { return filepath.Join(dir, p) })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pass string
		role       Role
		ok         bool
	}{{"mkrt", "bridge-pw", Writer, true}, {"viewer", "v", Viewer, true}, {"ops", "hashed", Writer, true},
		{"viewer", "V", 0, false}, {"viewer", "", 0, false}, {"ops", string(hash), 0, false}, {"ghost", "", 0, false}} {
		role, ok := us.Authenticate(c.user, c.pass)
		if role != c.role || ok != c.ok {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want %v, %v", c.user, c.pass, role, ok, c.role, c.ok)
		}
	}
	if _, err := ConfigUsers(configs.MQTT{Username: "x", PasswordFile: "missing"}, func(p string) string { return filepath.Join(dir, p) }); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("missing password file: %v", err)
	}
}

// TestSwitch: after a hand-over the HMI shows the next generation's tags.
func TestSwitch(t *testing.T) {
	r := newRig(t)
	cfg, err := configs.LoadBytes("next.yaml", []byte("metadata: {name: next}\ntags: [{name: flow, unit: m3/h}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := bridgetest.NewPlantFromConfig(cfg, 0)
	r.srv.Switch(cfg, p)
	_, out := r.do(r.login("viewer", "viewer-pass"), "GET", "/api/overview", nil)
	if out["health"] == nil {
		t.Fatalf("overview: %v", out)
	}
	var tags []TagInfo
	resp, err := r.login("viewer", "viewer-pass").Get(r.ts.URL + "/api/tags")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&tags)
	resp.Body.Close()
	if len(tags) != 1 || tags[0].Name != "flow" {
		t.Fatalf("tags after Switch: %+v", tags)
	}
}

var _ plant.Refuser = (*audit.Log)(nil)

// TestEventsAfterHandOver: when the bridge serves the next generation's
// plant, an open live stream gets the new tag directory and values without
// reconnecting.
func TestEventsAfterHandOver(t *testing.T) {
	next, err := configs.LoadBytes("next.yaml", []byte("metadata: {name: next}\ntags: [{name: flow, unit: m3/h, initial: 7}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	np, _ := bridgetest.NewPlantFromConfig(next, 0)
	var switched atomic.Bool
	r := newRig(t, func(c *Config) {
		c.Current = func() (*configs.Config, plant.Plant) {
			if switched.Load() {
				return next, np
			}
			return nil, nil
		}
	})
	sc := r.stream(r.login("viewer", "viewer-pass"))
	resets := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "event: tags-reset" {
			if resets++; resets == 1 {
				switched.Store(true)
			}
		}
		if resets == 2 && strings.HasPrefix(line, "data: [[0,7,") {
			return
		}
	}
	t.Fatalf("stream ended (%v) before the next generation's tags arrived", sc.Err())
}

// TestURL: the HMI's URL is the address it listens on once it runs (a
// configured port 0 becomes the port it got).
func TestURL(t *testing.T) {
	if u := URL("0.0.0.0:8080", true); u != "https://127.0.0.1:8080/" {
		t.Fatalf("URL: %s", u)
	}
	srv, err := New(Config{Listen: "127.0.0.1:0", Auth: Users{}}, bridgetest.NewPlant(&tag.Table{}, 0))
	if err != nil {
		t.Fatal(err)
	}
	if u := srv.URL(); u != "http://127.0.0.1:0/" {
		t.Fatalf("before Run: %s", u)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	wait(t, func() bool { return srv.Addr() != nil })
	if u := srv.URL(); strings.HasSuffix(u, ":0/") {
		t.Fatalf("running: %s", u)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Listen: "127.0.0.1:0"}, nil); err == nil || !strings.Contains(err.Error(), "Authenticator") {
		t.Fatalf("New without users: %v", err)
	}
}

// TestListenBusy: a listen address that is taken is an error naming the
// address and the config key, not a silent HMI.
func TestListenBusy(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	srv, err := New(Config{Listen: addr, Auth: Users{}}, bridgetest.NewPlant(&tag.Table{}, 0))
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "bridge.web.listen") {
		t.Fatalf("Run on a taken port: %v", err)
	}
}

// TestLogoutEndsStream: a live stream ends with a "logout" event once its
// session is logged out (in another tab, say).
func TestLogoutEndsStream(t *testing.T) {
	r := newRig(t)
	r.srv.sessionCheck = 20 * time.Millisecond
	c := r.login("viewer", "viewer-pass")
	sc := r.stream(c)
	if !sc.Scan() {
		t.Fatal("no event")
	}
	r.do(c, "POST", "/api/logout", nil)
	for sc.Scan() {
		if sc.Text() == "event: logout" {
			for sc.Scan() {
			}
			return // and the stream ended
		}
	}
	t.Fatalf("the stream went on after logout, or ended without saying so: %v", sc.Err())
}

func TestReadyLine(t *testing.T) {
	cfg := &configs.Config{}
	if l := ReadyLine(cfg); l != "" {
		t.Fatalf("HMI off: %q", l)
	}
	cfg.Bridge.Web.Listen = "127.0.0.1:18080"
	cfg.Bridge.MQTT = configs.MQTT{Username: "mkrt", Password: "secret-1", Users: []configs.User{
		{Username: "viewer", Password: "secret-2", ReadOnly: true}, {Username: "scada", Password: "secret-3"}}}
	l := ReadyLine(cfg)
	if l != "web HMI: http://127.0.0.1:18080/ (log in as viewer to watch; as mkrt, scada to write: the MQTT users and passwords)\n" || strings.Contains(l, "secret") {
		t.Fatalf("ready line %q", l)
	}
}

// TestUnknownUserTiming: refusing an unknown user takes as long as
// refusing a wrong password of a user with a bcrypt hash, so the time of a
// login does not tell which user names exist.
func TestUnknownUserTiming(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	us := Users{"op": {Secret: string(hash), Role: Writer}, "viewer": {Secret: "plain", Role: Viewer}}
	timeOf := func(user string) time.Duration {
		start := time.Now()
		for range 20 {
			if _, ok := us.Authenticate(user, "wrong"); ok {
				t.Fatal("wrong password accepted")
			}
		}
		return time.Since(start)
	}
	known, unknown := timeOf("op"), timeOf("nobody")
	if unknown < known/3 {
		t.Fatalf("an unknown user is refused in %v, a known one in %v: the time tells which names exist", unknown, known)
	}
}

// TestStreamsBounded: live streams beyond MaxStreams are refused with 503,
// so browsers (or a script with a session) cannot make the HMI hold
// unbounded buffers.
func TestStreamsBounded(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxStreams = 2 })
	c := r.login("viewer", "viewer-pass")
	r.stream(c)
	r.stream(c)
	req, _ := http.NewRequest("GET", r.ts.URL+"/api/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d, want 503 with Retry-After", resp.StatusCode)
	}
}

// TestPlainHTTPOnNetworkWarns: serving the HMI without TLS on anything but
// loopback is logged as a warning naming the fix.
func TestPlainHTTPOnNetworkWarns(t *testing.T) {
	for _, c := range []struct {
		listen string
		warn   bool
	}{{"127.0.0.1:0", false}, {"0.0.0.0:0", true}} {
		var buf bytes.Buffer
		srv, err := New(Config{Listen: c.listen, Auth: Users{}, Log: slog.New(slog.NewTextHandler(&buf, nil))}, bridgetest.NewPlant(&tag.Table{}, 0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		wait(t, func() bool { return srv.Addr() != nil })
		cancel()
		<-done
		if got := strings.Contains(buf.String(), "bridge.web.tls"); got != c.warn {
			t.Errorf("listen %s: warning %v, want %v:\n%s", c.listen, got, c.warn, buf.String())
		}
	}
}
