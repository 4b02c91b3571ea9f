// Package control is the local control socket of a running partition: the
// way `mkrt status`, `mkrt tags`, `mkrt set` and `mkrt apply` reach the
// supervisor. It serves HTTP/1.1 with JSON bodies on a unix socket
// (/run/mkrt/<partition>.sock, mode 0660 in a 0750 directory), so it can
// also be driven with `curl --unix-socket`. Every connection's peer is
// checked with SO_PEERCRED and SO_PEERGROUPS (its identity when it
// connected): root, the supervisor's own uid, or a member of the socket's
// group may talk to it; everyone else gets 403, and a refused set or apply
// is told to Options.Refuser (the audit log). A request's context carries
// the peer as a plant.Principal (protocol "cli", the OS user of its uid),
// so the writes it makes are audited with who made them.
//
// Routes (all JSON):
//
//	GET  /v1/status               the partition's supervisor.Status
//	GET  /v1/tags                 every tag's value ([]TagValue)
//	GET  /v1/tags?watch=500ms     a JSON line of []TagValue at that period until the client hangs up
//	POST /v1/tags/{name}          {"value":"42.5"} → Result
//	POST /v1/apply?file=PATH      the config YAML as the body → ApplyResult
//
// The handlers call a Controller the supervisor's owner implements. Linux
// only for the peer check; needs write access to the socket directory.
package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
)

// Dir is where a root supervisor puts partitions' sockets.
const Dir = "/run/mkrt"

// UserDir is where this user's supervisor puts them: Dir for root, else
// $XDG_RUNTIME_DIR/mkrt (~/.cache/mkrt without XDG_RUNTIME_DIR).
func UserDir() string { return userDir(os.Geteuid(), os.Getenv, os.UserHomeDir) }

func userDir(euid int, getenv func(string) string, home func() (string, error)) string {
	if euid == 0 {
		return Dir
	}
	base := getenv("XDG_RUNTIME_DIR")
	if base == "" {
		h, _ := home()
		base = filepath.Join(h, ".cache")
	}
	return filepath.Join(base, "mkrt")
}

// StateBase is where a root supervisor keeps partitions' state
// directories (retained values, the audit log): StateBase/<partition>.
const StateBase = "/var/lib/mkrt"

// UserStateBase is where this user's supervisor keeps them: StateBase for
// root, else $XDG_STATE_HOME/mkrt (~/.local/state/mkrt without it). It is
// the default of mkrt run --state-dir, less the partition's name.
func UserStateBase() string {
	if os.Geteuid() == 0 {
		return StateBase
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		h, _ := os.UserHomeDir()
		base = filepath.Join(h, ".local/state")
	}
	return filepath.Join(base, "mkrt")
}

// Dirs are where the CLI looks for sockets: UserDir first, then Dir (a
// member of a root supervisor's socket group talks to it from any user).
func Dirs() []string {
	if d := UserDir(); d != Dir {
		return []string{d, Dir}
	}
	return []string{Dir}
}

// SocketPath is the control socket this user's supervisor of the named
// partition listens on (under UserDir).
func SocketPath(partition string) string { return filepath.Join(UserDir(), partition+".sock") }

// Find is the socket of the named partition: the first of Dirs that has
// it, else its path under UserDir.
func Find(partition string) string {
	for _, d := range Dirs() {
		p := filepath.Join(d, partition+".sock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return SocketPath(partition)
}

// TagValue is one tag's current value as the CLI shows it.
type TagValue struct {
	Name     string    `json:"name"`
	Type     string    `json:"type,omitempty"`
	Unit     string    `json:"unit,omitempty"`
	Value    float64   `json:"value"`
	Text     string    `json:"text,omitempty"` // string tags
	Quality  string    `json:"quality"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Writable bool      `json:"writable,omitempty"`
	Device   string    `json:"device,omitempty"`
}

// Result is the outcome of a write to a tag.
type Result struct {
	Tag   string `json:"tag"`
	Value string `json:"value"`
	// Applied is true when the executive confirmed the write; false when it
	// was queued but not yet confirmed.
	Applied bool `json:"applied"`
	// Status and Cycle are the executive's answer (wire.Applied at the
	// start of Cycle); Old is the tag's value before (numbers).
	Status  wire.Status `json:"status,omitempty"`
	Cycle   uint64      `json:"cycle,omitempty"`
	Old     float64     `json:"old,omitempty"`
	Message string      `json:"message,omitempty"`
}

// ApplyResult is the outcome of applying a config.
type ApplyResult struct {
	// Applied is true when the running partition now runs the new config.
	Applied bool `json:"applied"`
	// Restarted is true when applying needed a partition restart.
	Restarted bool     `json:"restarted"`
	Changes   []string `json:"changes,omitempty"`
	Message   string   `json:"message,omitempty"`
}

// Controller is what the control socket serves; the supervisor's owner
// (mkrt run) implements it. Errors should wrap the sentinels below so the
// client sees the right kind of failure.
type Controller interface {
	Status() supervisor.Status
	Tags() []TagValue
	Set(ctx context.Context, name, value string) (Result, error)
	// Apply applies cfg, read from file (an absolute path: positions name
	// it and relative paths in cfg resolve against its directory; "" when
	// the config has no file).
	Apply(ctx context.Context, file string, cfg []byte) (ApplyResult, error)
}

// The kinds of failure, for errors.Is on both sides of the socket.
var (
	// ErrNotFound: no such tag.
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the tag is not writable, or the peer may not use the socket.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: a bad value or an invalid config.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable: the partition is not running (faulted, restarting, ...).
	ErrUnavailable = errors.New("partition unavailable")
	// ErrNoPartition: no control socket answers (nothing is running).
	ErrNoPartition = errors.New("no running partition")
)
