// Package audit records every attempt to write to the plant — accepted or
// refused, from every way in (Sparkplug B, JSON MQTT, Modbus TCP, the
// control socket's `mkrt set`, `mkrt apply` and hand-overs) — with who
// made it (plant.Principal: the MQTT user and client id, the Modbus peer
// and certificate role, the control-socket peer's OS user), the tag, the
// old and the new value, and the executive's answer or the reason for a
// refusal. Entries are JSON lines in a file, each line fsync'd before the
// write's result is returned, and lines on the bridge's slog logger.
//
// Wrap puts the audit in front of any Plant and makes the one write check
// (plant.Check) itself, so no protocol can write, or be refused, without
// leaving a record; a *Log is also the plant.Refuser that protocol servers
// tell of attempts they refuse before a write (ACLs, roles, requests that
// cannot be decoded). The file is rotated by size (audit.jsonl.1 … .N,
// oldest dropped); Scan reads it back, rotated files included, oldest
// first. It needs a writable directory.
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Entry is one audited attempt. The first fields are those of the first
// version of the log; the rest were added after, so readers of either
// keep working.
type Entry struct {
	Time time.Time `json:"time"`
	// Source is the way in (the principal's protocol): "sparkplug",
	// "json", "modbus", "cli", "apply", "hand-over".
	Source string `json:"source"`
	// Who is the principal's user (else client id or peer), or the who of
	// the command's origin when no principal was given.
	Who string `json:"who"`
	// Tag is the tag written ("#7" for an id no tag has, "" for an apply).
	Tag string `json:"tag"`
	Old any    `json:"old,omitempty"`
	New any    `json:"new,omitempty"`
	// OK is true when the executive applied the write (or the apply).
	OK bool `json:"ok"`
	// Error is why it was not, in full.
	Error string `json:"error,omitempty"`
	Cycle uint64 `json:"cycle,omitempty"`

	// Principal is who made the attempt, as the protocol server knew them.
	Principal *plant.Principal `json:"principal,omitempty"`
	// Refused is true for an attempt refused on purpose — by the write
	// check, the executive, an ACL or a role — rather than one that
	// failed (executive down, ring full, timeout); Reason says why.
	Refused bool   `json:"refused,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Status is the executive's (or the check's) answer by name:
	// "applied", "out of range", "read-only", ...
	Status string `json:"status,omitempty"`
	// Generation and Changes describe an apply or a hand-over: the
	// partition generation that runs after it and what changed.
	Generation int      `json:"generation,omitempty"`
	Changes    []string `json:"changes,omitempty"`
}

// The defaults of Options.
const (
	DefaultMaxSize = 16 << 20
	DefaultKeep    = 8
)

// Options configure a Log; the zero value is the defaults.
type Options struct {
	Log   *slog.Logger
	Clock func() time.Time
	// MaxSize is the size past which the file is rotated (default
	// DefaultMaxSize); an entry is never split across files.
	MaxSize int64
	// Keep is how many rotated files are kept (default DefaultKeep).
	Keep int
	// Mode of the audit files. Default 0640 (the owner writes, the group
	// reads: members of the supervisor's group may run mkrt audit) when
	// the directory lets its group in, else 0600.
	Mode fs.FileMode
}

// Log is an append-only, size-rotated audit file. It is safe for
// concurrent use.
type Log struct {
	path string
	o    Options
	log  *slog.Logger

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (creating) the audit file at path for appending, with the
// default rotation. log and now may be nil.
func Open(path string, log *slog.Logger, now func() time.Time) (*Log, error) {
	return New(path, Options{Log: log, Clock: now})
}

// New opens (creating) the audit file at path for appending.
func New(path string, o Options) (*Log, error) {
	if o.MaxSize < 0 || o.Keep < 0 {
		return nil, fmt.Errorf("audit: max size %d, keep %d: neither may be negative (0 is the default: %d bytes, %d files)", o.MaxSize, o.Keep, DefaultMaxSize, DefaultKeep)
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	}
	if o.Mode == 0 {
		o.Mode = 0o600
		if st, err := os.Stat(filepath.Dir(path)); err == nil && st.Mode().Perm()&0o010 != 0 {
			o.Mode = 0o640
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	l := &Log{path: path, o: o, log: o.Log.With("component", "audit")}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// open opens the file at l.path; a last line cut short (a crash while it
// was written) is ended, so the next entry starts a line of its own.
func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, l.o.Mode)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	fail := func(what string, err error) error {
		f.Close()
		return fmt.Errorf("audit: %s %s: %w", what, l.path, err)
	}
	if err := f.Chmod(l.o.Mode); err != nil { // the umask does not decide who reads the audit
		return fail("chmod", err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail("stat", err)
	}
	size := st.Size()
	if size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			return fail("read", err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				return fail("write", err)
			}
			size++
		}
	}
	l.f, l.size = f, size
	return nil
}

// Path is the audit file's path.
func (l *Log) Path() string { return l.path }

// Record appends e as one line and makes it durable, rotating the file
// first when the line would take it past the maximum size.
func (l *Log) Record(e Entry) error {
	if e.Time.IsZero() {
		e.Time = l.o.Clock()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	b = append(b, '\n')
	l.log.Info("write", "source", e.Source, "who", e.Who, "tag", e.Tag, "old", e.Old, "new", e.New, "ok", e.OK,
		"refused", e.Refused, "reason", e.Reason, "error", e.Error, "cycle", e.Cycle)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("audit: %s: %w", l.path, os.ErrClosed)
	}
	if l.size > 0 && l.size+int64(len(b)) > l.o.MaxSize {
		if err := l.rotate(); err != nil {
			// The entry still goes somewhere: the file keeps growing.
			l.log.Error("audit: rotation failed; the file grows past its maximum", "err", err)
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit: write %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync %s: %w", l.path, err)
	}
	return nil
}

// rotated is the name of the i-th rotated file (1 the newest).
func rotated(path string, i int) string { return path + "." + strconv.Itoa(i) }

// rotate shifts path.i to path.i+1 (dropping path.Keep and any after it), path to path.1,
// and starts an empty path. Every entry was fsync'd when written; the
// renames are made durable with an fsync of the directory. On failure
// the current file stays open, so no entry is lost.
func (l *Log) rotate() error {
	for i := l.o.Keep - 1; i >= 1; i-- {
		if err := os.Rename(rotated(l.path, i), rotated(l.path, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("audit: rotate: %w", err)
		}
	}
	if err := os.Rename(l.path, rotated(l.path, 1)); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	// Files past Keep (kept under a larger Keep before) go with the oldest.
	for i := l.o.Keep + 1; ; i++ {
		if os.Remove(rotated(l.path, i)) != nil {
			break
		}
	}
	old := l.f
	if err := l.open(); err != nil {
		// Keep appending to the renamed file rather than lose entries.
		return err
	}
	old.Close()
	if d, err := os.Open(filepath.Dir(l.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Close closes the file; Record fails after it.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Refuse implements plant.Refuser: it records an attempt a protocol
// server refused before it reached the plant. r.Principal is who tried;
// when it is empty, the principal ctx carries.
func (l *Log) Refuse(ctx context.Context, r plant.Refusal) {
	p := r.Principal
	if p == (plant.Principal{}) {
		p, _ = plant.PrincipalFrom(ctx)
	}
	e := Entry{Tag: r.Tag, Refused: true, Reason: r.Reason, Error: r.Reason}
	if r.Value != "" {
		e.New = r.Value
	}
	e.setPrincipal(p, "")
	l.record(e)
}

// Change is a change of the running config: an `mkrt apply` of
// parameters, or a hand-over to a new generation.
type Change struct {
	// Protocol is "apply" or "hand-over".
	Protocol string
	// Generation is the partition generation that runs after it.
	Generation int
	// Changes says what changed ("pid.kp: 1 -> 2 (cycle 88)").
	Changes []string
	// Err is why it was not made (nil: it was); Refused says it was
	// refused on purpose (an invalid config) rather than failed.
	Err     error
	Refused bool
}

// RecordChange records c, made by the principal ctx carries.
func (l *Log) RecordChange(ctx context.Context, c Change) {
	p, _ := plant.PrincipalFrom(ctx)
	p.Protocol = c.Protocol
	e := Entry{OK: c.Err == nil, Generation: c.Generation, Changes: c.Changes}
	e.setPrincipal(p, "")
	if c.Err != nil {
		e.Error, e.Refused = c.Err.Error(), c.Refused
		if c.Refused {
			e.Reason = e.Error
		}
	}
	l.record(e)
}

// record records e, and logs an entry that could not be written.
func (l *Log) record(e Entry) {
	if err := l.Record(e); err != nil {
		l.log.Error("audit: record lost", "err", err, "tag", e.Tag, "source", e.Source, "who", e.Who)
	}
}

// Principal names p in e; origin is the command's origin, used when p
// says nothing.
func (e *Entry) setPrincipal(p plant.Principal, origin string) {
	if p == (plant.Principal{}) {
		if origin != "" {
			o := wire.NewOrigin(origin)
			e.Source, e.Who = o.Split()
		}
		return
	}
	e.Principal = &p
	e.Source = p.Protocol
	for _, w := range []string{p.User, p.ClientID, p.Peer} {
		if w != "" {
			e.Who = w
			break
		}
	}
}

// Wrap returns p with every write attempt checked (plant.Check) and
// recorded in l, refused or not. When p is a plant.Batcher, so is the
// result: each command of a unit gets its entry.
func Wrap(p plant.Plant, l *Log) plant.Plant {
	a := &audited{Plant: p, l: l, tags: p.Tags()}
	if b, ok := p.(plant.Batcher); ok {
		return &batcher{audited: a, b: b}
	}
	return a
}

type audited struct {
	plant.Plant
	l    *Log
	tags []tag.Info
}

type batcher struct {
	*audited
	b plant.Batcher
}

var _ plant.Batcher = (*batcher)(nil)

func value(in *tag.Info, v float64, text string) any {
	switch in.Type {
	case tag.String:
		return text
	case tag.Bool:
		return v != 0
	}
	return v
}

// entry is the record of c before its answer: who, the tag and the value.
func (a *audited) entry(ctx context.Context, c wire.Command) Entry {
	p, _ := plant.PrincipalFrom(ctx)
	e := Entry{Tag: fmt.Sprintf("#%d", c.Tag), New: c.Value.Num}
	if c.Value.IsText {
		e.New = string(c.Value.Text)
	}
	e.setPrincipal(p, c.Origin.String())
	if in := a.info(c.Tag); in != nil {
		e.Tag, e.New = in.Name, value(in, c.Value.Num, string(c.Value.Text))
	}
	return e
}

func (a *audited) info(id tag.ID) *tag.Info {
	if id >= 0 && int(id) < len(a.tags) {
		return &a.tags[id]
	}
	return nil
}

// oldTexts are the string tags' values before cs: a result carries numbers
// only. nil when no command writes text.
func (a *audited) oldTexts(cs ...wire.Command) []string {
	for _, c := range cs {
		if c.Value.IsText && a.info(c.Tag) != nil {
			samples, text := make([]tag.Sample, len(a.tags)), make([]string, len(a.tags))
			if _, err := a.Plant.Snapshot(samples, text); err == nil {
				return text
			}
			return nil
		}
	}
	return nil
}

// answer completes e with the answer to c: the result, or the error.
func (a *audited) answer(e *Entry, c wire.Command, res wire.Result, oldText []string, err error) {
	if err == nil {
		e.OK, e.Cycle, e.Status = true, res.Cycle, res.Status.String()
		if in := a.info(c.Tag); in != nil {
			t := ""
			if oldText != nil {
				t = oldText[c.Tag]
			}
			e.Old = value(in, res.Old, t)
		}
		return
	}
	e.Error = err.Error()
	var rej *wire.RejectedError
	if errors.As(err, &rej) {
		e.Refused, e.Status, e.Cycle = true, rej.Result.Status.String(), rej.Result.Cycle
		e.Reason = e.Status
		if rej.Detail != "" {
			e.Reason += ": " + rej.Detail
		}
	}
}

// Write implements plant.Plant: the write check, then the plant; either
// answer is recorded before it is returned.
func (a *audited) Write(ctx context.Context, c wire.Command) (wire.Result, error) {
	e := a.entry(ctx, c)
	if err := plant.Check(a.tags, &c); err != nil {
		a.answer(&e, c, wire.Result{}, nil, err)
		a.l.record(e)
		return wire.Result{}, err
	}
	old := a.oldTexts(c)
	res, err := a.Plant.Write(ctx, c)
	a.answer(&e, c, res, old, err)
	a.l.record(e)
	return res, err
}

// WriteAll implements plant.Batcher: every command is checked, then the
// unit goes to the plant; each command gets an entry. When the unit is
// refused, every command's entry says so with the reason (the commands
// the refusal did not name: refused with the unit).
func (a *batcher) WriteAll(ctx context.Context, cs []wire.Command) ([]wire.Result, error) {
	es := make([]Entry, len(cs))
	for i, c := range cs {
		es[i] = a.entry(ctx, c)
	}
	var res []wire.Result
	var err error
	var old []string
	for i := range cs {
		if err = plant.Check(a.tags, &cs[i]); err != nil {
			break
		}
	}
	if err == nil {
		old = a.oldTexts(cs...)
		res, err = a.b.WriteAll(ctx, cs)
	}
	for i, c := range cs {
		if err != nil {
			a.answer(&es[i], c, wire.Result{}, nil, err)
			if rej := (*wire.RejectedError)(nil); errors.As(err, &rej) && rej.Tag != "" && rej.Tag != es[i].Tag {
				es[i].Reason = "refused with " + rej.Tag + " in the same request: " + es[i].Reason
			}
		} else if i < len(res) {
			a.answer(&es[i], c, res[i], old, nil)
		}
		a.l.record(es[i])
	}
	return res, err
}

// Files are the audit files of path that exist, oldest first: path.N …
// path.1, then path.
func Files(path string) []string {
	var rot []string
	for i := 1; ; i++ {
		if _, err := os.Stat(rotated(path, i)); err != nil {
			break
		}
		rot = append(rot, rotated(path, i))
	}
	var out []string
	for i := len(rot) - 1; i >= 0; i-- {
		out = append(out, rot[i])
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// Scan calls fn with every entry of the audit log at path, rotated files
// included, oldest first, until fn returns an error (which Scan returns).
// A line that is no entry (cut short by a crash, or damaged) is passed to
// bad with its file:line, when bad is not nil, and skipped.
func Scan(path string, fn func(Entry) error, bad func(where string, err error)) error {
	files := Files(path)
	if len(files) == 0 {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("audit: %w", err)
		}
		return fmt.Errorf("audit: no audit log at %s: %w", path, fs.ErrNotExist)
	}
	for _, name := range files {
		if err := scanFile(name, fn, bad); err != nil {
			return err
		}
	}
	return nil
}

func scanFile(name string, fn func(Entry) error, bad func(string, error)) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // rotated away meanwhile
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if bad != nil {
				bad(fmt.Sprintf("%s:%d", name, n), err)
			}
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("audit: read %s: %w", name, err)
	}
	return nil
}
