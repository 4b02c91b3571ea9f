// Package audit records every write SCADA makes to the plant — who, what,
// the old and the new value, and the executive's answer — as JSON lines in a
// file (each line fsync'd before the write's result is returned) and on the
// bridge's slog logger. Wrap puts the audit in front of any Plant, so no
// protocol can write without leaving a record. It needs a writable file.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Entry is one audited write.
type Entry struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	Who    string    `json:"who"`
	Tag    string    `json:"tag"`
	Old    any       `json:"old,omitempty"`
	New    any       `json:"new"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Cycle  uint64    `json:"cycle,omitempty"`
}

// Log is an append-only audit file.
type Log struct {
	mu  sync.Mutex
	f   *os.File
	log *slog.Logger
	now func() time.Time
}

// Open opens (creating) the audit file for appending. log and now may be nil.
func Open(path string, log *slog.Logger, now func() time.Time) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{f: f, log: log.With("component", "audit"), now: now}, nil
}

// Record appends e as one line and makes it durable.
func (l *Log) Record(e Entry) error {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	l.log.Info("write", "source", e.Source, "who", e.Who, "tag", e.Tag, "old", e.Old, "new", e.New, "ok", e.OK, "error", e.Error, "cycle", e.Cycle)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit: write %s: %w", l.f.Name(), err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: fsync %s: %w", l.f.Name(), err)
	}
	return nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

// Wrap returns p with every Write recorded in l.
func Wrap(p plant.Plant, l *Log) plant.Plant { return &audited{Plant: p, l: l, tags: p.Tags()} }

type audited struct {
	plant.Plant
	l    *Log
	tags []tag.Info
}

func value(in *tag.Info, v float64, text string) any {
	switch in.Type {
	case tag.String:
		return text
	case tag.Bool:
		return v != 0
	}
	return v
}

func (a *audited) Write(ctx context.Context, c wire.Command) (wire.Result, error) {
	var oldText string
	if c.Value.IsText && c.Tag >= 0 && int(c.Tag) < len(a.tags) {
		// The result carries numbers only: read a string's old value first.
		samples, text := make([]tag.Sample, len(a.tags)), make([]string, len(a.tags))
		if _, err := a.Plant.Snapshot(samples, text); err == nil {
			oldText = text[c.Tag]
		}
	}
	res, err := a.Plant.Write(ctx, c)
	source, who := c.Origin.Split()
	e := Entry{Source: source, Who: who, Tag: fmt.Sprintf("#%d", c.Tag), New: c.Value.Num, OK: err == nil, Cycle: res.Cycle}
	if c.Tag >= 0 && int(c.Tag) < len(a.tags) {
		in := &a.tags[c.Tag]
		e.Tag, e.New = in.Name, value(in, c.Value.Num, string(c.Value.Text))
		if err == nil {
			e.Old = value(in, res.Old, oldText)
		}
	}
	if err != nil {
		e.Error = err.Error()
		var rej *wire.RejectedError
		if errors.As(err, &rej) {
			e.Cycle = rej.Result.Cycle
		}
	}
	if aerr := a.l.Record(e); aerr != nil {
		a.l.log.Error("audit: record lost", "err", aerr)
	}
	return res, err
}
