// Package web is the bridge's web HMI: the running partition in a browser
// — an overview, the live tag table with in-place writes, trends of the
// last hour, alarms, task latency and the audit log — served by the
// bridge on the general kernel (bridge.web.listen).
//
// Every asset is embedded in the binary (no CDN, no build step): one small
// HTML page, its style sheet and its script, which draws the charts on a
// canvas. Live values reach the browser over Server-Sent Events.
//
// Security: nothing but the login form is served without a session. Users
// are the MQTT users (ConfigUsers; any Authenticator will do): read-only
// users see, the others write. Sessions are random 256-bit tokens in an
// HttpOnly, SameSite=Strict cookie (Secure, __Host- prefixed, over TLS);
// every state-changing request must come from the HMI's own origin
// (net/http CrossOriginProtection); logins are rate-limited per client
// address; every write and acknowledge goes through the bridge's audited
// plant with the user as its plant.Principal, and writes refused to a
// read-only user are recorded as refusals.
//
// It needs the port it listens on and read access to the audit log.
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/mqttjson"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

//go:embed assets
var assets embed.FS

// The defaults of Config.
const (
	DefaultTrend      = time.Hour
	DefaultTrendEvery = time.Second
	DefaultPoll       = 250 * time.Millisecond
	DefaultSession    = 12 * time.Hour
	DefaultMaxStreams = 32
	// LoginBurst logins are allowed from one address at once, then one
	// every LoginEvery.
	LoginBurst = 5
	LoginEvery = 12 * time.Second
	// MaxSlots bounds the samples the trend ring keeps per tag.
	MaxSlots = 1_000_000
)

// Config configures a Server.
type Config struct {
	// Listen is the address to serve on.
	Listen string
	// TLS, when set, makes the HMI serve HTTPS only.
	TLS *tls.Config
	// Auth checks logins.
	Auth Authenticator
	// Config is the running config: names, units, descriptions, alarms.
	Config *configs.Config
	// Refuser records writes refused to read-only users (the audit log).
	Refuser plant.Refuser
	// AuditPath is the audit log the Audit page reads ("" : none).
	AuditPath string
	// Trend is the history kept, TrendEvery its sample interval.
	Trend, TrendEvery time.Duration
	// Poll is how often the live values are read (default DefaultPoll).
	Poll time.Duration
	// Status is the bridge's status for the overview (may be nil).
	Status func() any
	// Partition is the supervisor's status of the partition for the
	// overview — state, restarts, isolation, who drives the outputs, the
	// last fault and hand-over — as `mkrt status --json` gives it; nil
	// when the bridge runs without a supervisor.
	Partition func() any
	// Current, when set, is the config and plant the bridge serves now:
	// the HMI follows it across a hand-over (as Switch does). A nil plant
	// means no change.
	Current func() (*configs.Config, plant.Plant)
	// MaxStreams bounds the live streams open at once (default
	// DefaultMaxStreams): each holds up to 64 updates for a slow browser.
	MaxStreams int
	// WriteTimeout bounds a write's wait for the executive (default 5s).
	WriteTimeout time.Duration
	Log          *slog.Logger
	Clock        func() time.Time
}

// Server is the HMI; build it with New, Run it once, Switch it to the next
// generation's plant.
type Server struct {
	c        Config
	log      *slog.Logger
	sessions *sessions
	logins   *limiter
	handler  http.Handler
	hub      *hub
	// sessionCheck is how often a live stream checks that its session
	// still exists (a logout ends it).
	sessionCheck time.Duration

	mu   sync.Mutex
	addr net.Addr
}

// New builds the HMI over p (the bridge's audited plant).
func New(c Config, p plant.Plant) (*Server, error) {
	if c.Auth == nil {
		return nil, errors.New("web: no Authenticator: nobody could log in")
	}
	if c.Config == nil {
		c.Config = &configs.Config{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Trend <= 0 {
		c.Trend = DefaultTrend
	}
	if c.TrendEvery <= 0 {
		c.TrendEvery = DefaultTrendEvery
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	s := &Server{c: c, log: c.Log.With("component", "web"), sessions: newSessions(DefaultSession, c.Clock),
		logins: newLimiter(LoginEvery, LoginBurst), sessionCheck: 5 * time.Second}
	s.hub = newHub(c, p)
	s.handler = s.routes()
	return s, nil
}

// Handler is the HMI's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address the HMI listens on once Run has started (nil before).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL is the HMI's address as a browser opens it: the address it listens
// on once Run has started, else the configured one.
func (s *Server) URL() string {
	if a := s.Addr(); a != nil {
		return URL(a.String(), s.c.TLS != nil)
	}
	return URL(s.c.Listen, s.c.TLS != nil)
}

// URL is the address of an HMI listening on listen as a browser opens it.
func URL(listen string, tls bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// Run listens and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.c.Listen)
	if err != nil {
		return fmt.Errorf("web: listen %s: %w (bridge.web.listen)", s.c.Listen, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if s.c.TLS != nil {
		srv.TLSConfig = s.c.TLS
		ln = tls.NewListener(ln, s.c.TLS)
	}
	s.log.Info("web: HMI listening", "url", URL(ln.Addr().String(), s.c.TLS != nil))
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); s.c.TLS == nil && err == nil && !ap.Addr().IsLoopback() {
		s.log.Warn("web: the HMI listens on a network address without TLS: passwords and session cookies cross the network in clear; set bridge.web.tls",
			"addr", ln.Addr().String())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.hub.run(ctx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// Switch makes the HMI show p, the plant of cfg (the next generation's),
// in place of its plant; the trends restart when the tags changed.
func (s *Server) Switch(cfg *configs.Config, p plant.Plant) { s.hub.switchTo(cfg, p) }

func (s *Server) cookieName() string {
	if s.c.TLS != nil {
		return "__Host-mkrt-hmi"
	}
	return "mkrt-hmi"
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /", files)
	mux.HandleFunc("POST /api/login", s.login)
	mux.HandleFunc("POST /api/logout", s.logout)
	mux.HandleFunc("GET /api/me", s.auth(Viewer, s.me))
	mux.HandleFunc("GET /api/tags", s.auth(Viewer, s.tags))
	mux.HandleFunc("GET /api/events", s.auth(Viewer, s.events))
	mux.HandleFunc("GET /api/trend", s.auth(Viewer, s.trend))
	mux.HandleFunc("GET /api/overview", s.auth(Viewer, s.overview))
	mux.HandleFunc("GET /api/alarms", s.auth(Viewer, s.alarms))
	mux.HandleFunc("GET /api/sequences", s.auth(Viewer, s.sequences))
	mux.HandleFunc("GET /api/audit", s.auth(Viewer, s.audit))
	mux.HandleFunc("POST /api/write", s.auth(Viewer, s.write))
	mux.HandleFunc("POST /api/ack", s.auth(Viewer, s.ack))
	// Every POST must come from the HMI's own origin: Sec-Fetch-Site or
	// Origin tell a cross-site request, which is refused with 403.
	cop := http.NewCrossOriginProtection()
	h := cop.Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		if s.c.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			hd.Set("Cache-Control", "no-store")
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h.ServeHTTP(w, r)
	})
}

// auth serves h only to a logged-in user with at least role min.
func (s *Server) auth(min Role, h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(s.cookieName())
		if err != nil {
			jsonError(w, http.StatusUnauthorized, "not logged in")
			return
		}
		se, ok := s.sessions.get(ck.Value)
		if !ok {
			jsonError(w, http.StatusUnauthorized, "session expired: log in again")
			return
		}
		if se.role < min {
			jsonError(w, http.StatusForbidden, "user "+se.user+" is "+se.role.String()+": not allowed")
			return
		}
		h(w, r, se)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

type credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.logins.allow(r.RemoteAddr, s.c.Clock()) {
		w.Header().Set("Retry-After", strconv.Itoa(int(LoginEvery.Seconds())))
		jsonError(w, http.StatusTooManyRequests, "too many login attempts from your address: wait "+LoginEvery.String()+" and try again")
		return
	}
	var c credentials
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		jsonError(w, http.StatusBadRequest, "login: send {\"user\":…,\"password\":…}: "+err.Error())
		return
	}
	role, ok := s.c.Auth.Authenticate(c.User, c.Password)
	if !ok {
		s.log.Warn("web: login refused", "user", c.User, "peer", r.RemoteAddr)
		jsonError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	tok := s.sessions.create(c.User, role)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: tok, Path: "/", HttpOnly: true, Secure: s.c.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(DefaultSession.Seconds())})
	s.log.Info("web: login", "user", c.User, "role", role.String(), "peer", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"user": c.User, "role": role.String()})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(s.cookieName()); err == nil {
		s.sessions.delete(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: "", Path: "/", HttpOnly: true, Secure: s.c.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, se session) {
	writeJSON(w, http.StatusOK, map[string]string{"user": se.user, "role": se.role.String()})
}

// TagInfo is a tag as the HMI shows it.
type TagInfo struct {
	ID          int      `json:"id"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Unit        string   `json:"unit,omitempty"`
	Device      string   `json:"device,omitempty"`
	Writable    bool     `json:"writable,omitempty"`
	Min         *float64 `json:"min,omitempty"`
	Max         *float64 `json:"max,omitempty"`
	Description string   `json:"description,omitempty"`
}

func (s *Server) tags(w http.ResponseWriter, r *http.Request, se session) {
	v := s.hub.view()
	writeJSON(w, http.StatusOK, v.infos)
}

// principal is who the request comes from.
func principal(r *http.Request, se session) plant.Principal {
	return plant.Principal{Protocol: "web", User: se.user, Peer: r.RemoteAddr, Role: se.role.String()}
}

// WriteRequest is a write from the Tags page.
type WriteRequest struct {
	Tag   string          `json:"tag"`
	Value json.RawMessage `json:"value"`
}

// WriteResult is a write's answer: applied at Cycle, or Error.
type WriteResult struct {
	OK     bool   `json:"ok"`
	Cycle  uint64 `json:"cycle,omitempty"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, se session) {
	var req WriteRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "write: send {\"tag\":…,\"value\":…}: "+err.Error())
		return
	}
	status, res := s.writeTag(r, se, req.Tag, req.Value)
	writeJSON(w, status, res)
}

// writeTag writes raw (a JSON value) to the tag name for se.
func (s *Server) writeTag(r *http.Request, se session, name string, raw []byte) (int, WriteResult) {
	ctx := plant.WithPrincipal(r.Context(), principal(r, se))
	v := s.hub.view()
	if se.role < Writer {
		plant.Refuse(ctx, s.c.Refuser, plant.Refusal{Principal: principal(r, se), Tag: name, Value: string(raw),
			Reason: "web user " + se.user + " is read-only"})
		return http.StatusForbidden, WriteResult{Error: "user " + se.user + " is read-only: writes need a user without read_only"}
	}
	id, ok := v.ids[name]
	if !ok {
		return http.StatusNotFound, WriteResult{Error: fmt.Sprintf("no tag %q", name)}
	}
	in := &v.p.Tags()[id]
	num, text, _, err := mqttjson.ParseSet(in, raw)
	if err != nil {
		return http.StatusBadRequest, WriteResult{Status: wire.WrongType.String(), Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.WriteTimeout)
	defer cancel()
	res, err := v.p.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: id, Value: wire.ValueOf(in, num, text),
		Origin: wire.NewOrigin("web:" + se.user)})
	if err != nil {
		out := WriteResult{Error: err.Error(), Cycle: res.Cycle}
		if res.Status != 0 {
			out.Status = res.Status.String()
		}
		var rej *wire.RejectedError
		if errors.As(err, &rej) {
			out.Status = rej.Result.Status.String()
			return http.StatusConflict, out
		}
		return http.StatusServiceUnavailable, out
	}
	return http.StatusOK, WriteResult{OK: true, Cycle: res.Cycle, Status: res.Status.String()}
}

func (s *Server) trend(w http.ResponseWriter, r *http.Request, se session) {
	v := s.hub.view()
	since := s.c.Clock().Add(-s.c.Trend).UnixMilli()
	if q := r.URL.Query().Get("since"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "trend: since is Unix milliseconds: "+err.Error())
			return
		}
		since = n
	}
	type series struct {
		Tag  string     `json:"tag"`
		Unit string     `json:"unit,omitempty"`
		T    []int64    `json:"t"`
		V    []*float64 `json:"v"`
	}
	out := []series{}
	for name := range strings.SplitSeq(r.URL.Query().Get("tags"), ",") {
		id, ok := v.ids[name]
		if !ok {
			continue
		}
		ts, vs := v.ring.Series(id, since, nil, nil)
		sr := series{Tag: name, Unit: v.p.Tags()[id].Unit, T: ts, V: make([]*float64, len(vs))}
		for i := range vs {
			if vs[i] == vs[i] { // NaN (a gap) is null
				sr.V[i] = &vs[i]
			}
		}
		out = append(out, sr)
	}
	writeJSON(w, http.StatusOK, map[string]any{"every_ms": s.c.TrendEvery.Milliseconds(), "span_ms": s.c.Trend.Milliseconds(), "series": out})
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, se session) {
	v := s.hub.view()
	cfg := v.cfg
	h := v.p.Health()
	type device struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Quality string `json:"quality"`
		Reason  string `json:"reason,omitempty"`
	}
	devs := []device{}
	snap := s.hub.latest()
	for _, d := range cfg.Devices {
		dv := device{Name: d.Name, Address: d.Address, Quality: "unknown"}
		for i, in := range v.p.Tags() {
			if in.Device != d.Name || i >= len(snap) {
				continue
			}
			q := snap[i]
			if dv.Quality == "unknown" || q.Quality != tag.Good {
				dv.Quality, dv.Reason = q.Quality.String(), ""
				if q.Reason != tag.NoReason {
					dv.Reason = q.Reason.String()
				}
			}
			if q.Quality != tag.Good {
				break
			}
		}
		devs = append(devs, dv)
	}
	b := cfg.Bridge
	links := map[string]string{"mqtt": b.MQTT.Listen, "modbus": b.Modbus.Listen, "metrics": b.Metrics.Listen}
	if b.MQTT.Broker != "" && b.MQTT.Broker != configs.DefaultBroker {
		links["mqtt"] = b.MQTT.Broker
	}
	out := map[string]any{
		"name": cfg.Metadata.Name, "description": cfg.Metadata.Description, "site": cfg.Metadata.Site,
		"backend": string(cfg.Partition.Backend), "cpus": cfg.Partition.CPUs.String(),
		"health": healthJSON(h), "devices": devs, "links": links, "trend_bytes": v.ring.Bytes(),
		"handovers": s.handovers(),
	}
	if s.c.Status != nil {
		out["bridge"] = s.c.Status()
	}
	if s.c.Partition != nil {
		out["partition"] = s.c.Partition()
	}
	writeJSON(w, http.StatusOK, out)
}

// handovers are the latest applies and hand-overs of the audit log.
func (s *Server) handovers() []audit.Entry {
	es, _ := s.auditTail(10, func(e *audit.Entry) bool { return e.Source == "hand-over" || e.Source == "apply" })
	return es
}

// auditTail is the last n entries of the audit log that keep selects,
// newest first.
func (s *Server) auditTail(n int, keep func(*audit.Entry) bool) ([]audit.Entry, error) {
	out := []audit.Entry{}
	if s.c.AuditPath == "" {
		return out, nil
	}
	ring := make([]audit.Entry, 0, n)
	next := 0
	err := audit.Scan(s.c.AuditPath, func(e audit.Entry) error {
		if !keep(&e) {
			return nil
		}
		if len(ring) < n {
			ring = append(ring, e)
		} else {
			ring[next] = e
		}
		next = (next + 1) % n
		return nil
	}, func(string, error) {})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	for i := range ring {
		out = append(out, ring[(next-1-i+2*len(ring))%len(ring)])
	}
	return out, err
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, se session) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	n := 200
	if v, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && v > 0 && v <= 5000 {
		n = v
	}
	es, err := s.auditTail(n, func(e *audit.Entry) bool {
		if q == "" {
			return true
		}
		for _, f := range []string{e.Source, e.Who, e.Tag, e.Status, e.Reason, e.Error, fmt.Sprint(e.New), fmt.Sprint(e.Old)} {
			if strings.Contains(strings.ToLower(f), q) {
				return true
			}
		}
		return false
	})
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": s.c.AuditPath, "entries": es})
}

// ReadyLine is what `mkrt run` prints of the HMI once the plant runs: its
// URL and who logs in (users, never passwords), one line; "" when the HMI
// is off.
func ReadyLine(cfg *configs.Config) string {
	wc := cfg.Bridge.Web
	if wc.Listen == "" {
		return ""
	}
	var viewers, writers []string
	if u := cfg.Bridge.MQTT.Username; u != "" {
		writers = append(writers, u)
	}
	for _, u := range cfg.Bridge.MQTT.Users {
		if u.ReadOnly {
			viewers = append(viewers, u.Username)
		} else {
			writers = append(writers, u.Username)
		}
	}
	who := ""
	if len(viewers) > 0 {
		who = " (log in as " + strings.Join(viewers, ", ") + " to watch"
		if len(writers) > 0 {
			who += "; as " + strings.Join(writers, ", ") + " to write"
		}
		who += ": the MQTT users and passwords)"
	} else if len(writers) > 0 {
		who = " (log in as " + strings.Join(writers, ", ") + ": the MQTT users and passwords)"
	}
	return "web HMI: " + URL(wc.Listen, wc.TLS.Cert != "") + who + "\n"
}
