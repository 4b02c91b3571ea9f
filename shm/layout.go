package shm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// Version is the layout version this build writes and reads.
const Version = 3

// Magic starts every region.
var magic = [8]byte{'m', 'k', 'r', 't', '-', 's', 'h', 'm'}

// Fixed sizes of the layout (bytes).
const (
	lineSize       = 64   // every hot counter sits alone on a line of this size
	headerSize     = 1024 // static header (CRC-protected) + writer identity line
	headerStatic   = 308  // bytes covered by the header CRC
	heartbeatSize  = 5 * lineSize
	taskEntrySize  = 2 * lineSize // name/period line + hot counter line
	dirEntrySize   = 192
	imageHead      = 2 * lineSize // seq line + cycle/time line
	imageSlotSize  = 32
	ringHead       = 2 * lineSize // producer index line + consumer index line
	resultSlotSize = 32
	eventSlotSize  = 128
	nameMax        = 64 // tag name bytes in the directory
	unitMax        = 16
	taskNameMax    = 48
	partitionMax   = 32
	reasonMax      = 112
	maxTags        = 1 << 20
	maxTasks       = 256
	maxRing        = 1 << 16
	maxText        = 4096
	pageSize       = 4096
	// paramNameMax is the command text every layout carries whatever its
	// string tags: a CmdSetParam names its parameter "block.param" there.
	paramNameMax = 128
)

// Command slot flags (the slot's flags byte).
const (
	cmdFlagText = 1 << 0 // the value is text
	cmdFlagMore = 1 << 1 // the next command belongs to the same unit (Reader.SubmitAll)
)

// Default ring capacities (commands, results, events).
const (
	DefaultCommands = 256
	DefaultEvents   = 1024
)

// Histogram range defaults, as in configs.Latency.
const (
	defaultHighest = int64(100 * time.Millisecond)
	defaultDigits  = 3
)

// sections, in region order.
const (
	secHeartbeat = iota
	secTasks
	secDir
	secImage
	secText
	secCommands
	secResults
	secEvents
	secHist
	secHandOver
	numSections
)

var sectionNames = [numSections]string{"heartbeat", "tasks", "tag directory", "process image", "string values", "command ring", "result ring", "event ring", "histograms", "hand-over area"}

type section struct{ Off, Len uint64 }

// geom is every number the header carries; two sides agree on a region when
// their geoms are equal.
type geom struct {
	Size       uint64
	Hash       [32]byte
	Partition  [partitionMax]byte
	Tags       uint32
	Tasks      uint32
	CmdCap     uint32
	ResCap     uint32
	EvtCap     uint32
	CmdText    uint32
	HistCounts uint32
	HistLow    int64
	HistHigh   int64
	HistDigits uint32
	TextBytes  uint32
	HandOver   uint32 // hand-over blob capacity
	Sec        [numSections]section
}

// Task names a cyclic task for the region's task table and histograms.
type Task struct {
	Name   string
	Period time.Duration
}

// Params is what a layout is computed from. Both sides compute it from the
// same compiled config, so they compute the same layout.
type Params struct {
	// Tags is the tag table's Info, indexed by tag.ID.
	Tags []tag.Info
	// Tasks are the cyclic tasks, in config order.
	Tasks []Task
	// Latency gives the histogram range (highest, significant digits); the
	// lowest trackable value is always 1 ns.
	Latency configs.Latency
	// Commands and Events are ring capacities, rounded up to a power of
	// two; zero means DefaultCommands / DefaultEvents. The result ring has
	// the command ring's capacity.
	Commands, Events int
	// ConfigHash is the compiled config's hash (configs.Config.Hash).
	ConfigHash [32]byte
	// Partition names the partition (metadata.name), at most 32 bytes.
	Partition string
	// MinSize makes the region at least this big (partition.shared_memory).
	MinSize int64
	// HandOver is the capacity in bytes of the hand-over blob (the
	// executive's exported state); zero: 64 KiB plus room for every tag.
	HandOver int
}

// ParamsFor gathers Params from a config, its tag table and its hash.
func ParamsFor(cfg *configs.Config, tags *tag.Table, hash [32]byte) Params {
	p := Params{Latency: cfg.Latency, ConfigHash: hash, Partition: cfg.Metadata.Name, MinSize: int64(cfg.Partition.SharedMemory)}
	if tags != nil {
		p.Tags = tags.Info
	}
	blocks := 0
	for _, t := range cfg.Tasks {
		p.Tasks = append(p.Tasks, Task{Name: t.Name, Period: t.Period.D()})
		blocks += len(t.Blocks)
	}
	p.HandOver = defaultHandOver(len(p.Tags), 0) + blocks*handOverPerBlock
	if tags != nil {
		p.HandOver = defaultHandOver(len(tags.Info), textBytes(tags.Info)) + blocks*handOverPerBlock
	}
	return p
}

// Layout is a computed region layout: section offsets and sizes, plus the tag
// and task descriptions written to the directory when the region is
// formatted. It is immutable and safe to share.
type Layout struct {
	g     geom
	tags  []tag.Info
	tasks []Task
	text  []uint32 // per tag: offset into the string section (string tags)
	hist  histGeom
}

// Size is the region size in bytes (a multiple of the page size).
func (l *Layout) Size() int64 { return int64(l.g.Size) }

// Tags is the number of tags in the process image.
func (l *Layout) Tags() int { return int(l.g.Tags) }

// Tasks is the number of tasks with histograms.
func (l *Layout) Tasks() int { return int(l.g.Tasks) }

// CommandCapacity is the command (and result) ring capacity.
func (l *Layout) CommandCapacity() int { return int(l.g.CmdCap) }

// EventCapacity is the event ring capacity.
func (l *Layout) EventCapacity() int { return int(l.g.EvtCap) }

// CommandTextMax is the longest string value a command can carry.
func (l *Layout) CommandTextMax() int { return int(l.g.CmdText) }

// ConfigHash is the config hash the region is bound to.
func (l *Layout) ConfigHash() [32]byte { return l.g.Hash }

// Partition is the partition name the region is bound to.
func (l *Layout) Partition() string { return cstr(l.g.Partition[:]) }

// HistogramRange is the histograms' lowest and highest trackable values (ns)
// and significant digits.
func (l *Layout) HistogramRange() (lowest, highest int64, digits int) {
	return l.g.HistLow, l.g.HistHigh, int(l.g.HistDigits)
}

// NewLayout computes the layout for p, or says why p cannot be laid out.
func NewLayout(p Params) (*Layout, error) {
	g := geom{Hash: p.ConfigHash, HistLow: 1, HistHigh: int64(p.Latency.Highest), HistDigits: uint32(p.Latency.Digits)}
	if g.HistHigh == 0 {
		g.HistHigh = defaultHighest
	}
	if p.Latency.Digits == 0 {
		g.HistDigits = defaultDigits
	}
	if len(p.Partition) > partitionMax {
		return nil, fmt.Errorf("shm: %w: partition name %q is %d bytes; the header holds at most %d", ErrInvalid, p.Partition, len(p.Partition), partitionMax)
	}
	copy(g.Partition[:], p.Partition)
	if len(p.Tags) > maxTags || len(p.Tasks) > maxTasks {
		return nil, fmt.Errorf("shm: %w: %d tags and %d tasks; at most %d and %d", ErrInvalid, len(p.Tags), len(p.Tasks), maxTags, maxTasks)
	}
	g.Tags, g.Tasks = uint32(len(p.Tags)), uint32(len(p.Tasks))
	var err error
	if g.CmdCap, err = ringCap("command", p.Commands, DefaultCommands); err != nil {
		return nil, err
	}
	g.ResCap = g.CmdCap
	if g.EvtCap, err = ringCap("event", p.Events, DefaultEvents); err != nil {
		return nil, err
	}
	l := &Layout{tags: append([]tag.Info(nil), p.Tags...), tasks: append([]Task(nil), p.Tasks...), text: make([]uint32, len(p.Tags))}
	g.CmdText = paramNameMax
	for i, in := range p.Tags {
		if len(in.Name) > nameMax {
			return nil, fmt.Errorf("shm: %w: tag name %q is %d bytes; the tag directory holds at most %d", ErrInvalid, in.Name, len(in.Name), nameMax)
		}
		if len(in.Device) > nameMax {
			return nil, fmt.Errorf("shm: %w: device name %q of tag %q is %d bytes; the tag directory holds at most %d", ErrInvalid, in.Device, in.Name, len(in.Device), nameMax)
		}
		if len(in.Unit) > unitMax {
			return nil, fmt.Errorf("shm: %w: unit %q of tag %q is %d bytes; the tag directory holds at most %d", ErrInvalid, in.Unit, in.Name, len(in.Unit), unitMax)
		}
		if in.Type != tag.String {
			continue
		}
		if in.Length < 0 || in.Length > maxText {
			return nil, fmt.Errorf("shm: %w: string tag %q has length %d; at most %d", ErrInvalid, in.Name, in.Length, maxText)
		}
		n := textCap(in.Length)
		l.text[i] = g.TextBytes
		g.TextBytes += n
		g.CmdText = max(g.CmdText, n)
	}
	for _, t := range p.Tasks {
		if len(t.Name) > taskNameMax {
			return nil, fmt.Errorf("shm: %w: task name %q is %d bytes; the task table holds at most %d", ErrInvalid, t.Name, len(t.Name), taskNameMax)
		}
	}
	if g.HistDigits < 1 || g.HistDigits > 5 || g.HistHigh < 2 {
		return nil, fmt.Errorf("shm: %w: histogram range 1..%d ns with %d digits (digits 1-5, highest at least 2)", ErrInvalid, g.HistHigh, g.HistDigits)
	}
	l.hist = newHistGeom(g.HistLow, g.HistHigh, int(g.HistDigits))
	g.HistCounts = uint32(l.hist.counts)
	switch {
	case p.HandOver == 0:
		g.HandOver = uint32(defaultHandOver(len(p.Tags), int(g.TextBytes)))
	case p.HandOver < 0 || p.HandOver > maxHandOver:
		return nil, fmt.Errorf("shm: %w: hand-over area of %d bytes; at most %d", ErrInvalid, p.HandOver, maxHandOver)
	default:
		g.HandOver = uint32(roundUp(uint64(p.HandOver), 8))
	}
	minSize := uint64(0)
	if p.MinSize > 0 {
		minSize = uint64(p.MinSize)
	}
	place(&g, minSize)
	l.g = g
	return l, nil
}

func ringCap(what string, n, def int) (uint32, error) {
	if n == 0 {
		n = def
	}
	if n < 2 || n > maxRing {
		return 0, fmt.Errorf("shm: %w: %s ring capacity %d; between 2 and %d", ErrInvalid, what, n, maxRing)
	}
	return uint32(1) << bits.Len(uint(n-1)), nil
}

// textCap is the bytes a string slot of length n takes: n rounded up to 8,
// at least 8, so the slot can be read with 8-byte atomic loads.
func textCap(n int) uint32 { return uint32(max(8, (n+7)&^7)) }

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

// place computes the section offsets and the region size from the counts in
// g. Counts are bounded before place is called, so nothing overflows.
func place(g *geom, minSize uint64) {
	cmdSlot := roundUp(csText+uint64(g.CmdText), lineSize)
	histLen := roundUp(uint64(g.HistCounts)*8, lineSize)
	lens := [numSections]uint64{
		secHeartbeat: heartbeatSize,
		secTasks:     uint64(g.Tasks) * taskEntrySize,
		secDir:       uint64(g.Tags) * dirEntrySize,
		secImage:     imageHead + uint64(g.Tags)*imageSlotSize,
		secText:      uint64(g.TextBytes),
		secCommands:  ringHead + uint64(g.CmdCap)*cmdSlot,
		secResults:   ringHead + uint64(g.ResCap)*resultSlotSize,
		secEvents:    ringHead + uint64(g.EvtCap)*eventSlotSize,
		secHist:      uint64(g.Tasks) * 2 * histLen,
		secHandOver:  handOverHead + uint64(g.HandOver),
	}
	off := uint64(headerSize)
	for i, n := range lens {
		g.Sec[i] = section{Off: off, Len: n}
		off = roundUp(off+n, lineSize)
	}
	g.Size = max(roundUp(off, pageSize), roundUp(minSize, pageSize))
}

func (g *geom) cmdSlot() int { return int(roundUp(csText+uint64(g.CmdText), lineSize)) }
func (g *geom) histLen() int { return int(roundUp(uint64(g.HistCounts)*8, lineSize)) }

// Header byte offsets.
const (
	hMagic      = 0
	hVersion    = 8
	hHeaderSize = 12
	hSize       = 16
	hHash       = 24
	hPartition  = 56
	hTags       = 88
	hTasks      = 92
	hCmdCap     = 96
	hResCap     = 100
	hEvtCap     = 104
	hCmdText    = 108
	hHistCounts = 112
	hHistDigits = 116
	hHistLow    = 120
	hHistHigh   = 128
	hTextBytes  = 136
	hHandOver   = 140
	hSections   = 144 // numSections × (off u64, len u64) = 160 bytes
	hCRC        = 304 // crc32c of bytes [0, hCRC)
	hBootID     = 512 // writer identity line: boot id [16], pid u32, claims u32
	hPID        = 528
	hClaims     = 532
)

var le = binary.LittleEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeHeader writes the static header for g into b (len ≥ headerSize).
func encodeHeader(b []byte, g *geom) {
	clear(b[:hBootID])
	copy(b[hMagic:], magic[:])
	le.PutUint32(b[hVersion:], Version)
	le.PutUint32(b[hHeaderSize:], headerSize)
	le.PutUint64(b[hSize:], g.Size)
	copy(b[hHash:], g.Hash[:])
	copy(b[hPartition:], g.Partition[:])
	le.PutUint32(b[hTags:], g.Tags)
	le.PutUint32(b[hTasks:], g.Tasks)
	le.PutUint32(b[hCmdCap:], g.CmdCap)
	le.PutUint32(b[hResCap:], g.ResCap)
	le.PutUint32(b[hEvtCap:], g.EvtCap)
	le.PutUint32(b[hCmdText:], g.CmdText)
	le.PutUint32(b[hHistCounts:], g.HistCounts)
	le.PutUint32(b[hHistDigits:], g.HistDigits)
	le.PutUint64(b[hHistLow:], uint64(g.HistLow))
	le.PutUint64(b[hHistHigh:], uint64(g.HistHigh))
	le.PutUint32(b[hTextBytes:], g.TextBytes)
	le.PutUint32(b[hHandOver:], g.HandOver)
	for i, s := range g.Sec {
		le.PutUint64(b[hSections+16*i:], s.Off)
		le.PutUint64(b[hSections+16*i+8:], s.Len)
	}
	le.PutUint32(b[hCRC:], crc32.Checksum(b[:hCRC], castagnoli))
}

// decodeHeader reads and checks the header of a mapping of mapped bytes. It
// checks everything that makes the region safe to use: magic, version, CRC,
// every count against its bound, every section against the geometry the
// counts imply, and the size against the mapping. It never panics.
func decodeHeader(b []byte) (geom, error) {
	var g geom
	if len(b) < headerSize {
		return g, mismatch(ErrSize, "mapping size", fmt.Sprintf("at least %d bytes", headerSize), len(b))
	}
	if !bytes.Equal(b[hMagic:hMagic+8], magic[:]) {
		if allZero(b[:headerSize]) {
			return g, fmt.Errorf("shm: %w (all-zero header)", ErrNotFormatted)
		}
		return g, mismatch(ErrMagic, "magic", fmt.Sprintf("%q", magic[:]), fmt.Sprintf("%q", b[hMagic:hMagic+8]))
	}
	if v := le.Uint32(b[hVersion:]); v != Version {
		return g, mismatch(ErrVersion, "layout version", Version, v)
	}
	if want, got := crc32.Checksum(b[:hCRC], castagnoli), le.Uint32(b[hCRC:]); want != got {
		return g, mismatch(ErrCorrupt, "header checksum", fmt.Sprintf("%#08x", want), fmt.Sprintf("%#08x", got))
	}
	if n := le.Uint32(b[hHeaderSize:]); n != headerSize {
		return g, mismatch(ErrCorrupt, "header size", headerSize, n)
	}
	g.Size = le.Uint64(b[hSize:])
	copy(g.Hash[:], b[hHash:])
	copy(g.Partition[:], b[hPartition:])
	g.Tags = le.Uint32(b[hTags:])
	g.Tasks = le.Uint32(b[hTasks:])
	g.CmdCap = le.Uint32(b[hCmdCap:])
	g.ResCap = le.Uint32(b[hResCap:])
	g.EvtCap = le.Uint32(b[hEvtCap:])
	g.CmdText = le.Uint32(b[hCmdText:])
	g.HistCounts = le.Uint32(b[hHistCounts:])
	g.HistDigits = le.Uint32(b[hHistDigits:])
	g.HistLow = int64(le.Uint64(b[hHistLow:]))
	g.HistHigh = int64(le.Uint64(b[hHistHigh:]))
	g.TextBytes = le.Uint32(b[hTextBytes:])
	g.HandOver = le.Uint32(b[hHandOver:])
	for i := range g.Sec {
		g.Sec[i] = section{Off: le.Uint64(b[hSections+16*i:]), Len: le.Uint64(b[hSections+16*i+8:])}
	}
	bound := func(field string, v, lo, hi uint64) error {
		if v < lo || v > hi {
			return mismatch(ErrCorrupt, field, fmt.Sprintf("%d..%d", lo, hi), v)
		}
		return nil
	}
	pow2 := func(field string, v uint32) error {
		if err := bound(field, uint64(v), 2, maxRing); err != nil {
			return err
		}
		if v&(v-1) != 0 {
			return mismatch(ErrCorrupt, field, "a power of two", v)
		}
		return nil
	}
	for _, err := range []error{
		bound("tag count", uint64(g.Tags), 0, maxTags),
		bound("task count", uint64(g.Tasks), 0, maxTasks),
		pow2("command ring capacity", g.CmdCap),
		pow2("result ring capacity", g.ResCap),
		pow2("event ring capacity", g.EvtCap),
		bound("command text size", uint64(g.CmdText), 0, maxText),
		bound("string area size", uint64(g.TextBytes), 0, uint64(g.Tags)*maxText),
		bound("histogram digits", uint64(g.HistDigits), 1, 5),
		bound("histogram lowest", uint64(g.HistLow), 1, 1),
		bound("histogram highest", uint64(g.HistHigh), 2, math.MaxInt64/4),
		bound("hand-over area size", uint64(g.HandOver), 0, maxHandOver),
	} {
		if err != nil {
			return g, err
		}
	}
	if g.CmdText%8 != 0 || g.TextBytes%8 != 0 || g.HandOver%8 != 0 {
		return g, mismatch(ErrCorrupt, "string and hand-over sizes", "multiples of 8", fmt.Sprintf("%d, %d and %d", g.CmdText, g.TextBytes, g.HandOver))
	}
	if want := newHistGeom(g.HistLow, g.HistHigh, int(g.HistDigits)).counts; uint64(g.HistCounts) != uint64(want) {
		return g, mismatch(ErrCorrupt, "histogram counts length", want, g.HistCounts)
	}
	want := g
	place(&want, 0)
	for i := range g.Sec {
		if g.Sec[i] != want.Sec[i] {
			return g, mismatch(ErrCorrupt, sectionNames[i]+" section", fmt.Sprintf("offset %d length %d", want.Sec[i].Off, want.Sec[i].Len),
				fmt.Sprintf("offset %d length %d", g.Sec[i].Off, g.Sec[i].Len))
		}
	}
	if g.Size < want.Size || g.Size%pageSize != 0 {
		return g, mismatch(ErrSize, "region size in header", fmt.Sprintf("a multiple of %d, at least %d", pageSize, want.Size), g.Size)
	}
	if g.Size > uint64(len(b)) {
		return g, mismatch(ErrSize, "region size", fmt.Sprintf("at most the mapping's %d bytes", len(b)), g.Size)
	}
	return g, nil
}

// compare reports the first difference between the layout this side
// computed (want) and the one a region holds (got).
func compare(want, got *geom) error {
	switch {
	case want.Hash != got.Hash:
		return mismatch(ErrConfigHash, "config hash", hex.EncodeToString(want.Hash[:]), hex.EncodeToString(got.Hash[:]))
	case want.Partition != got.Partition:
		return mismatch(ErrPartition, "partition", fmt.Sprintf("%q", cstr(want.Partition[:])), fmt.Sprintf("%q", cstr(got.Partition[:])))
	}
	type field struct {
		name      string
		want, got any
	}
	for _, f := range []field{
		{"tag count", want.Tags, got.Tags}, {"task count", want.Tasks, got.Tasks},
		{"command ring capacity", want.CmdCap, got.CmdCap}, {"result ring capacity", want.ResCap, got.ResCap},
		{"event ring capacity", want.EvtCap, got.EvtCap}, {"command text size", want.CmdText, got.CmdText},
		{"histogram highest", want.HistHigh, got.HistHigh}, {"histogram digits", want.HistDigits, got.HistDigits},
		{"string area size", want.TextBytes, got.TextBytes}, {"hand-over area size", want.HandOver, got.HandOver},
	} {
		if f.want != f.got {
			return mismatch(ErrLayout, f.name, f.want, f.got)
		}
	}
	if want.Sec != got.Sec {
		return mismatch(ErrLayout, "section table", want.Sec, got.Sec)
	}
	if want.Size != got.Size {
		return mismatch(ErrSize, "region size", want.Size, got.Size)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// cstr is the text of a NUL-padded fixed field.
func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
