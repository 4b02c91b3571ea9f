// Package retain persists the values of retained tags (tag.Info.Retain) so
// a restarted partition resumes with its setpoints and counters.
//
// The file format is small and checked: an 8-byte magic "MKRTRETN", a
// little-endian uint16 version (1), uint16 zero, uint32 payload length, the
// JSON payload, and a CRC-32C of everything before it. A save writes a temp
// file, fsyncs it, keeps the current good file as <path>.bak, renames the
// temp file over <path> and fsyncs the directory, so a crash at any point
// leaves a good generation behind. A corrupt, truncated or foreign file is
// reported as a *CorruptError (errors.Is ErrCorrupt), logged and skipped in
// favour of the .bak. Needs only a writable directory (e.g. /var/lib/mkrt).
package retain

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Value is one retained tag's value. Numeric and bool tags use Value;
// string tags use Text.
type Value struct {
	Name  string
	Value float64
	Text  string
}

// Version is the format version written.
const Version = 1

const (
	magic     = "MKRTRETN"
	headerLen = 16
	// maxPayload bounds what Load reads (a retained store is small).
	maxPayload = 64 << 20
)

// ErrCorrupt classifies every *CorruptError.
var ErrCorrupt = errors.New("retain: corrupt file")

// CorruptError is a retained-value file that cannot be trusted.
type CorruptError struct {
	Path   string
	Reason string
}

func (e *CorruptError) Error() string { return "retain: " + e.Path + ": " + e.Reason }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Store is the retained-value file of one partition. Not safe for
// concurrent Saves (the Saver serialises them).
type Store struct {
	path string
	log  *slog.Logger
	now  func() time.Time
	// beforeRename, when set, runs after the temp file is durable and before
	// it replaces the current file (tests simulate a crash there).
	beforeRename func() error
}

// New returns the store at path (its directory must exist). log may be nil.
func New(path string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{path: path, log: log, now: time.Now}
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

type record struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"` // strconv 'g' text: keeps NaN and ±Inf
	Text  string `json:"text,omitempty"`
}

type payload struct {
	Saved  time.Time `json:"saved"`
	Values []record  `json:"values"`
}

func encode(vals []Value, now time.Time) ([]byte, error) {
	p := payload{Saved: now.UTC(), Values: make([]record, len(vals))}
	for i, v := range vals {
		p.Values[i] = record{Name: v.Name, Text: v.Text}
		if v.Text == "" {
			p.Values[i].Value = strconv.FormatFloat(v.Value, 'g', -1, 64)
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("retain: encode: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(magic)
	binary.Write(&buf, binary.LittleEndian, uint16(Version))
	binary.Write(&buf, binary.LittleEndian, uint16(0))
	binary.Write(&buf, binary.LittleEndian, uint32(len(body)))
	buf.Write(body)
	binary.Write(&buf, binary.LittleEndian, crc32.Checksum(buf.Bytes(), crcTable))
	return buf.Bytes(), nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func decode(path string, b []byte) ([]Value, error) {
	bad := func(format string, args ...any) error {
		return &CorruptError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) < headerLen+4 {
		return nil, bad("truncated: %d bytes", len(b))
	}
	if string(b[:8]) != magic {
		return nil, bad("not a retained-value file (bad magic)")
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != Version {
		return nil, bad("format version %d, this mkrt reads version %d", v, Version)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if uint64(len(b)) != uint64(headerLen)+uint64(n)+4 {
		return nil, bad("length %d does not match the file size %d (truncated?)", n, len(b))
	}
	end := headerLen + int(n)
	if got, want := crc32.Checksum(b[:end], crcTable), binary.LittleEndian.Uint32(b[end:]); got != want {
		return nil, bad("checksum mismatch (crc32c %08x, stored %08x)", got, want)
	}
	var p payload
	if err := json.Unmarshal(b[headerLen:end], &p); err != nil {
		return nil, bad("payload: %v", err)
	}
	out := make([]Value, 0, len(p.Values))
	for _, r := range p.Values {
		v := Value{Name: r.Name, Text: r.Text}
		if r.Value != "" {
			f, err := strconv.ParseFloat(r.Value, 64)
			if err != nil {
				return nil, bad("value of %q: %v", r.Name, err)
			}
			v.Value = f
		}
		out = append(out, v)
	}
	return out, nil
}

func readFile(path string) ([]Value, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&limited{f: f, n: maxPayload + headerLen + 4 + 1}); err != nil {
		return nil, fmt.Errorf("retain: read %s: %w", path, err)
	}
	return decode(path, buf.Bytes())
}

// limited reads at most n bytes (so a huge foreign file is rejected, not slurped).
type limited struct {
	f *os.File
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("retain: %s is larger than %d bytes: %w", l.f.Name(), maxPayload, ErrCorrupt)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// Load returns the values of the newest good generation: the file, else its
// .bak. A bad generation is logged and skipped. With no file at all it
// returns nil, nil (a first start). When every generation present is bad
// it returns the *CorruptError of the newest.
func (s *Store) Load() ([]Value, error) {
	var firstErr error
	for _, p := range []string{s.path, s.path + ".bak"} {
		vals, err := readFile(p)
		if err == nil {
			if firstErr != nil {
				s.log.Warn("retained values restored from the previous generation", "path", p)
			}
			return vals, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.log.Error("retained-value file ignored", "path", p, "err", err)
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// Save writes vals durably (temp file, fsync, rename, fsync directory),
// keeping the current good file as the .bak generation.
func (s *Store) Save(vals []Value) error {
	b, err := encode(vals, s.now())
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		os.Remove(tmp)
		return err
	}
	if s.beforeRename != nil {
		if err := s.beforeRename(); err != nil {
			return err
		}
	}
	// Keep the current file as .bak only when it is good: a corrupt file
	// must not push out the last good generation.
	if _, err := readFile(s.path); err == nil {
		if err := os.Rename(s.path, s.path+".bak"); err != nil {
			return fmt.Errorf("retain: keep previous generation: %w", err)
		}
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("retain: %w", err)
	}
	return syncDir(filepath.Dir(s.path))
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("retain: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("retain: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("retain: fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("retain: close %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("retain: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("retain: fsync %s: %w", dir, err)
	}
	return nil
}

// FromTable returns the current values of the table's retained tags.
func FromTable(t *tag.Table) []Value {
	var out []Value
	for i, in := range t.Info {
		if !in.Retain {
			continue
		}
		out = append(out, Value{Name: in.Name, Value: t.Samples[i].Value, Text: t.Text[i]})
	}
	return out
}

// Restore writes vals into the table's retained tags and returns how many
// were applied. Values of tags that no longer exist or are no longer
// retained (the config changed), and values the tag no longer admits
// (wire.CheckValue: its type, min/max or length changed; NaN and ±Inf
// never) are skipped and named in skipped with the reason.
func Restore(t *tag.Table, vals []Value) (applied int, skipped []string) {
	for _, v := range vals {
		id, ok := t.Lookup(v.Name)
		if !ok || !t.Info[id].Retain {
			skipped = append(skipped, v.Name+" (not a retained tag)")
			continue
		}
		in := &t.Info[id]
		wv := wire.ValueOf(in, v.Value, v.Text)
		if st := wire.CheckValue(in, wv); st != wire.Applied {
			skipped = append(skipped, v.Name+" ("+wire.Explain(in, wv, st)+")")
			continue
		}
		if wv.IsText {
			t.Text[id] = v.Text
		} else {
			t.Samples[id].Value = v.Value
		}
		applied++
	}
	return applied, skipped
}
