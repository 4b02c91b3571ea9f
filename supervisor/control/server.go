package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/wire"
)

// Options configure a Server.
type Options struct {
	// Group is the gid that owns the socket and whose members may use it
	// (-1 or 0: the supervisor's group; only root and the supervisor's uid
	// then pass, plus members of that group).
	Group int
	// Log receives one line per request; nil discards.
	Log *slog.Logger
	// MaxBody bounds request bodies (default 4 MiB: configs are small).
	MaxBody int64
	// Refuser records the writes (set, apply) of peers that may not use
	// the socket: the audit log. nil records nothing.
	Refuser plant.Refuser
}

// Server serves one Controller on a unix socket.
type Server struct {
	path string
	ctrl Controller
	o    Options
	ln   net.Listener
	srv  *http.Server
	auth authorizer
}

// Listen creates the socket's directory (0750) if needed, replaces a stale
// socket nobody answers on, listens, and sets the socket to mode 0660 and
// group o.Group. It fails when another supervisor already answers at path.
func Listen(path string, ctrl Controller, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 4 << 20
	}
	if o.Group <= 0 {
		o.Group = os.Getegid()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s: another supervisor is running there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Lchown(path, -1, o.Group); err != nil && !errors.Is(err, os.ErrPermission) {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{path: path, ctrl: ctrl, o: o, ln: ln, auth: authorizer{uid: os.Geteuid(), gid: o.Group}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/tags", s.tags)
	mux.HandleFunc("POST /v1/tags/{name}", s.set)
	mux.HandleFunc("POST /v1/apply", s.apply)
	s.srv = &http.Server{
		Handler:           s.authorize(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until ctx ends, then shuts down (waiting up to 5 s
// for requests in flight, watch streams end at once) and removes the socket.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		os.Remove(s.path)
		return fmt.Errorf("control: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		s.srv.Close()
	}
	os.Remove(s.path)
	<-errc
	if err != nil {
		return fmt.Errorf("control: shutdown: %w", err)
	}
	return nil
}

type credKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	cred, err := peerCred(c)
	if err != nil {
		return context.WithValue(ctx, credKey{}, err)
	}
	return context.WithValue(ctx, credKey{}, cred)
}

func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		var who plant.Principal
		switch v := r.Context().Value(credKey{}).(type) {
		case Cred:
			err, who = s.auth.check(v), v.Principal("cli")
		case error:
			err = fmt.Errorf("%w: cannot identify the peer: %v", ErrForbidden, v)
		default:
			err = fmt.Errorf("%w: cannot identify the peer", ErrForbidden)
		}
		if err != nil {
			s.o.Log.Warn("control socket: peer refused", "err", err)
			if r.Method == http.MethodPost {
				s.refuse(r, who, err)
			}
			writeError(w, err)
			return
		}
		r = r.WithContext(plant.WithPrincipal(r.Context(), who))
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBody)
		s.o.Log.Debug("control request", "method", r.Method, "path", r.URL.Path)
		next.ServeHTTP(w, r)
	})
}

// refuse records the write attempt r of a peer the socket refused: the
// tag and value of a set, or an apply.
func (s *Server) refuse(r *http.Request, who plant.Principal, err error) {
	rf := plant.Refusal{Principal: who, Reason: err.Error()}
	if name, ok := strings.CutPrefix(r.URL.Path, "/v1/tags/"); ok {
		rf.Tag = name
		var req setRequest
		if json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req) == nil {
			rf.Value = req.Value
		}
	} else if r.URL.Path == "/v1/apply" {
		rf.Principal.Protocol = "apply"
	}
	plant.Refuse(r.Context(), s.o.Refuser, rf)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.ctrl.Status())
}

func (s *Server) tags(w http.ResponseWriter, r *http.Request) {
	watch := r.URL.Query().Get("watch")
	if watch == "" {
		writeJSON(w, http.StatusOK, s.ctrl.Tags())
		return
	}
	every, err := time.ParseDuration(watch)
	if err != nil || every < 10*time.Millisecond {
		writeError(w, fmt.Errorf("%w: watch period %q (write e.g. 500ms; at least 10ms)", ErrInvalid, watch))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := enc.Encode(s.ctrl.Tags()); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

type setRequest struct {
	Value string `json:"value"`
}

func (s *Server) set(w http.ResponseWriter, r *http.Request) {
	var req setRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, fmt.Errorf("%w: request body: %v", ErrInvalid, err))
		return
	}
	res, err := s.ctrl.Set(r.Context(), r.PathValue("name"), req.Value)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	cfg, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, fmt.Errorf("%w: request body: %v", ErrInvalid, err))
		return
	}
	file := r.URL.Query().Get("file")
	if file != "" && !filepath.IsAbs(file) {
		writeError(w, fmt.Errorf("%w: file %q is not an absolute path", ErrInvalid, file))
		return
	}
	res, err := s.ctrl.Apply(r.Context(), file, cfg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// errorBody is every error response. A write the executive (or the
// check before it) refused carries its status and cycle.
type errorBody struct {
	Error  string      `json:"error"`
	Kind   string      `json:"kind,omitempty"`
	Status wire.Status `json:"status,omitempty"`
	Cycle  uint64      `json:"cycle,omitempty"`
}

var kinds = []struct {
	err    error
	name   string
	status int
}{
	{ErrNotFound, "not_found", http.StatusNotFound},
	{ErrForbidden, "forbidden", http.StatusForbidden},
	{ErrInvalid, "invalid", http.StatusUnprocessableEntity},
	{ErrUnavailable, "unavailable", http.StatusServiceUnavailable},
}

func writeError(w http.ResponseWriter, err error) {
	body := errorBody{Error: err.Error()}
	if rej := (*wire.RejectedError)(nil); errors.As(err, &rej) {
		body.Status, body.Cycle = rej.Result.Status, rej.Result.Cycle
	}
	status := http.StatusInternalServerError
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			body.Kind, status = k.name, k.status
			break
		}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// kindError turns an error body back into an error that errors.Is matches:
// its kind, and for a refused write the refusal (wire.ErrOutOfRange, ...).
func kindError(status int, b errorBody) error {
	e := &RemoteError{Status: status, Msg: strings.TrimSpace(b.Error)}
	for _, k := range kinds {
		if b.Kind == k.name {
			e.kind = k.err
		}
	}
	if b.Status != 0 {
		e.Refusal = &wire.RejectedError{Result: wire.Result{Status: b.Status, Cycle: b.Cycle}}
	}
	return e
}

// RemoteError is an error the supervisor answered with.
type RemoteError struct {
	Status int
	Msg    string
	// Refusal is the executive's (or the check's) answer to a refused write.
	Refusal *wire.RejectedError
	kind    error
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap exposes the kind (ErrNotFound, ErrInvalid, ...) and the refusal.
func (e *RemoteError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.Refusal != nil {
		errs = append(errs, e.Refusal)
	}
	return errs
}
