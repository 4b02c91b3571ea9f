// Package tag is the value model shared by the executive, the field I/O
// drivers and the bridge: a tag's value, its quality and its source
// timestamp, and the table that gives every tag of a config a stable ID.
//
// Tag IDs are assigned in config order: the tags of each device in device
// order, then the internal tags. Every component numbers tags the same way,
// so an ID means the same tag in the executive, in the shared-memory tag
// directory and in the bridge. Nothing here needs privileges.
package tag

import (
	"fmt"
	"math"
)

// Quality says how far a value can be trusted (OPC UA / Sparkplug sense).
type Quality uint8

// The qualities. The zero value is Bad: a tag nobody has written yet is not
// trustworthy.
const (
	Bad       Quality = 0
	Good      Quality = 1
	Uncertain Quality = 2
	// Stale is a value that was good but has not been refreshed in time
	// (the device or the partition stopped reporting).
	Stale Quality = 3
)

func (q Quality) String() string {
	switch q {
	case Good:
		return "good"
	case Bad:
		return "bad"
	case Uncertain:
		return "uncertain"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("quality(%d)", uint8(q))
}

// Reason says why a value is not good.
type Reason uint8

// The reasons.
const (
	NoReason     Reason = iota
	NotConnected        // the device was never reached
	CommFailure         // the connection failed or was reset
	Timeout             // the device did not answer in time
	Exception           // the device answered with a protocol exception
	BadFrame            // the answer was malformed
	OutOfRange          // the value is outside the tag's min/max
	ConfigError         // the tag cannot be decoded as configured
	SafeState           // the executive drove the output to its safe state
	NotRunning          // the partition is not running
)

var reasonNames = [...]string{"", "not connected", "communication failure", "timeout", "protocol exception", "malformed frame", "out of range", "configuration error", "safe state", "partition not running"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// ID is a tag's index in the Table.
type ID int32

// Sample is one tag's value at one moment. Numeric and bool tags keep their
// value in Value (bool as 0 or 1; integer types exactly up to 2^53); string
// tags keep it in the Table's Text.
type Sample struct {
	Value   float64
	Quality Quality
	Reason  Reason
	// Time is the source timestamp in Unix nanoseconds.
	Time int64
}

// Info is what is known of a tag from the config.
type Info struct {
	Name     string
	Type     DataType
	Unit     string
	Device   string // "" for internal tags
	Access   Access
	Writable bool // SCADA may write it
	Retain   bool
	Min, Max float64 // -Inf/+Inf when unset
	Deadband float64
	Length   int // string tags: maximum length in bytes
}

// Table is every tag of a config with its current sample.
type Table struct {
	Info    []Info
	Samples []Sample
	Text    []string // string tag values, indexed by ID
	byName  map[string]ID
}

// NewTable makes the table of the tags info describes, numbered in that
// order (configs.Config.TagTable gives a config's, with initial values).
// Internal tags start good at zero; device tags start bad (not connected)
// until their device is read.
func NewTable(info []Info) (*Table, error) {
	t := &Table{Info: append([]Info(nil), info...), Samples: make([]Sample, len(info)), Text: make([]string, len(info)),
		byName: make(map[string]ID, len(info))}
	for i, in := range info {
		if _, dup := t.byName[in.Name]; dup {
			return nil, fmt.Errorf("tag: duplicate tag %q", in.Name)
		}
		t.byName[in.Name] = ID(i)
		if in.Device != "" {
			t.Samples[i] = Sample{Quality: Bad, Reason: NotConnected}
		} else {
			t.Samples[i] = Sample{Quality: Good}
		}
	}
	return t, nil
}

// Lookup returns the ID of the named tag.
func (t *Table) Lookup(name string) (ID, bool) {
	id, ok := t.byName[name]
	return id, ok
}

// Len is the number of tags.
func (t *Table) Len() int { return len(t.Info) }

// Changed reports whether a tag's sample (and text, for string tags) moved
// from what was last reported, for report by exception: a quality change
// always counts, text any change, a number more than the tag's deadband.
// NaN is one value (NaN to NaN is no change; NaN to a number is one).
//
// Hot path (every scan of the bridge): no allocation.
func (in *Info) Changed(cur, last Sample, curText, lastText string) bool {
	if cur.Quality != last.Quality {
		return true
	}
	if in.Type == String {
		return curText != lastText
	}
	if cur.Value == last.Value {
		return false
	}
	if math.IsNaN(cur.Value) || math.IsNaN(last.Value) {
		return math.IsNaN(cur.Value) != math.IsNaN(last.Value)
	}
	return math.Abs(cur.Value-last.Value) > in.Deadband
}
