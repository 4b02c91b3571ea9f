// Package wiretest holds the table of tag writes that every implementation
// of the write path runs — wire.CheckTagWrite itself, the executive, the
// shared region with its fake executive, the bridge's Plant over a region
// and its in-memory fake — so none of them can drift from the one check.
// Each implementation's tests build its plant from Tags and expect Want
// for every case. Nothing here needs privileges.
package wiretest

import (
	"math"

	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Tags is the tag directory the cases write to: internal tags of every
// type, one read-only.
func Tags() []tag.Info {
	open := func(in tag.Info) tag.Info {
		in.Min, in.Max, in.Access, in.Writable = math.Inf(-1), math.Inf(1), tag.ReadWrite, true
		return in
	}
	sp := open(tag.Info{Name: "setpoint", Type: tag.Float64, Unit: "m"})
	sp.Min, sp.Max = 0, 10
	ro := open(tag.Info{Name: "level", Type: tag.Float64})
	ro.Writable = false
	return []tag.Info{
		sp,
		open(tag.Info{Name: "mode", Type: tag.Int16}),
		open(tag.Info{Name: "count", Type: tag.Uint32}),
		open(tag.Info{Name: "enable", Type: tag.Bool}),
		open(tag.Info{Name: "gain", Type: tag.Float32}),
		open(tag.Info{Name: "recipe", Type: tag.String, Length: 8}),
		ro,
	}
}

// WriteCase is one write and the status every implementation must answer.
type WriteCase struct {
	Tag   string // "" for a tag ID no directory has
	Value wire.Value
	Want  wire.Status
}

// ID is the case's tag ID in Tags (out of range for Tag "").
func (c WriteCase) ID() tag.ID {
	for i, in := range Tags() {
		if in.Name == c.Tag {
			return tag.ID(i)
		}
	}
	return tag.ID(len(Tags()) + 5)
}

// WriteCases is the table.
func WriteCases() []WriteCase {
	n, s := wire.Number, wire.Text
	return []WriteCase{
		{"setpoint", n(7.5), wire.Applied},
		{"setpoint", n(0), wire.Applied},
		{"setpoint", n(10.5), wire.OutOfRange},
		{"setpoint", n(-0.1), wire.OutOfRange},
		{"setpoint", n(math.NaN()), wire.WrongType},
		{"setpoint", n(math.Inf(1)), wire.WrongType},
		{"setpoint", s("7"), wire.WrongType},
		{"mode", n(-3), wire.Applied},
		{"mode", n(1.5), wire.WrongType},
		{"mode", n(40000), wire.OutOfRange},
		{"mode", n(math.NaN()), wire.WrongType},
		{"count", n(-1), wire.OutOfRange},
		{"count", n(4294967295), wire.Applied},
		{"count", n(4294967296), wire.OutOfRange},
		{"enable", n(1), wire.Applied},
		{"enable", n(2), wire.WrongType},
		{"enable", n(0.5), wire.WrongType},
		{"gain", n(1e39), wire.OutOfRange},
		{"gain", n(-2.5), wire.Applied},
		{"recipe", s("batch 7"), wire.Applied},
		{"recipe", s(""), wire.Applied},
		{"recipe", s("too long!"), wire.OutOfRange},
		{"recipe", n(1), wire.WrongType},
		{"level", n(1), wire.ReadOnly},
		{"", n(1), wire.UnknownTag},
	}
}

// UnitCase is several writes sent as one unit (shm.Reader.SubmitAll,
// plant.Batcher): each write's Want is the status it gets within the
// unit — all Applied, or the refused ones their status and the others
// wire.Withdrawn, and then none is applied.
type UnitCase struct {
	Name   string
	Writes []WriteCase
}

// Refused is the status of the first write the unit refuses (Applied when
// it refuses none): what a plant.Batcher's error names.
func (u UnitCase) Refused() wire.Status {
	for _, w := range u.Writes {
		if w.Want != wire.Applied && w.Want != wire.Withdrawn {
			return w.Want
		}
	}
	return wire.Applied
}

// UnitCases is the table of units. No value a refused unit carries is
// written by an earlier case, so an implementation can check that none
// of it was applied.
func UnitCases() []UnitCase {
	n, s := wire.Number, wire.Text
	return []UnitCase{
		{"all accepted", []WriteCase{{"setpoint", n(2.5), wire.Applied}, {"mode", n(4), wire.Applied}, {"recipe", s("unit"), wire.Applied}}},
		{"one out of range", []WriteCase{{"setpoint", n(3.25), wire.Withdrawn}, {"count", n(-1), wire.OutOfRange}, {"enable", n(1), wire.Withdrawn}}},
		{"read-only last", []WriteCase{{"gain", n(1.5), wire.Withdrawn}, {"level", n(1), wire.ReadOnly}}},
		{"two refused", []WriteCase{{"mode", n(1.5), wire.WrongType}, {"recipe", s("never"), wire.Withdrawn}, {"", n(1), wire.UnknownTag}}},
		{"same tag twice", []WriteCase{{"count", n(7), wire.Applied}, {"count", n(8), wire.Applied}}},
	}
}
