package wire

import (
	"errors"
	"fmt"
	"math"

	"github.com/mkrt/mkrt/shm/tag"
)

// The refusals, for errors.Is. Status.Err gives the executive's; the
// general side adds ErrBusy (the command ring is full) and ErrNotRunning
// (no executive answers).
var (
	ErrUnknownTag  = errors.New("unknown tag")
	ErrReadOnly    = errors.New("tag is not writable")
	ErrOwned       = errors.New("tag is written by a task's blocks")
	ErrWrongType   = errors.New("value does not fit the tag's type")
	ErrOutOfRange  = errors.New("value out of range")
	ErrNotRunning  = errors.New("executive not running")
	ErrUnsupported = errors.New("command not supported")
	ErrBadParam    = errors.New("parameter rejected")
	// ErrWithdrawn: not applied because another command of its unit was
	// refused (a unit is applied whole or not at all).
	ErrWithdrawn = errors.New("not applied: another command of its unit was refused")
	// ErrBusy: the command ring is full; retry later.
	ErrBusy = errors.New("command ring full")
	// ErrRejected matches every *RejectedError.
	ErrRejected = errors.New("rejected")
)

// RejectedError is a command the executive answered with a refusal, or a
// write the general side's check refused before sending it (Result.Cycle
// is 0 then: see Checked). errors.Is matches ErrRejected and the status's
// sentinel.
type RejectedError struct {
	Result Result
	// Tag names the tag and Detail says why, when known ("5 is above max 4").
	Tag, Detail string
}

func (e *RejectedError) Error() string {
	var b []byte
	b = append(b, "rejected"...)
	if e.Result.Cycle != 0 {
		b = fmt.Appendf(b, " at cycle %d", e.Result.Cycle)
	}
	b = append(b, ": "...)
	if e.Tag != "" {
		b = append(b, e.Tag+": "...)
	}
	b = append(b, e.Result.Status.String()...)
	if e.Detail != "" {
		b = append(b, ": "+e.Detail...)
	}
	return string(b)
}

// Checked reports whether the general side refused the write before it
// reached the executive (the executive answers at a cycle, never 0).
func (e *RejectedError) Checked() bool { return e.Result.Cycle == 0 }

// Is makes errors.Is match ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Unwrap is the status's sentinel.
func (e *RejectedError) Unwrap() error { return e.Result.Status.Err() }

// CheckWrite is the one check of a value written to a tag — by SCADA, the
// CLI, a retained value restored, a config's initial or safe-state value:
// the tag must be writable (SCADA may write it), the value must fit the
// tag's type (text for string tags, 0 or 1 for bools, a whole number for
// integers; never NaN or ±Inf) and lie within the type's range, the tag's
// min and max, and a string tag's length. It returns Applied when the write
// may go ahead.
//
// Hot path (the executive calls it for every write): no allocation.
func CheckWrite(in *tag.Info, v Value) Status {
	if !in.Writable {
		return ReadOnly
	}
	return CheckValue(in, v)
}

// CheckTagWrite is CheckWrite of the tag id of a tag directory (indexed by
// tag ID): UnknownTag when the directory has no such tag.
//
// Hot path: no allocation.
func CheckTagWrite(dir []tag.Info, id tag.ID, v Value) Status {
	if id < 0 || int(id) >= len(dir) {
		return UnknownTag
	}
	return CheckWrite(&dir[id], v)
}

// CheckValue is CheckWrite without the writability rule, for values the
// config itself gives a tag (initial and safe-state values) and for
// retained values restored into it.
//
// Hot path: no allocation.
func CheckValue(in *tag.Info, v Value) Status {
	if (in.Type == tag.String) != v.IsText {
		return WrongType
	}
	if v.IsText {
		if len(v.Text) > in.Length {
			return OutOfRange
		}
		return Applied
	}
	f := v.Num
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return WrongType
	}
	switch lo, hi, integer := in.Type.IntRange(); {
	case in.Type == tag.Bool:
		if f != 0 && f != 1 {
			return WrongType
		}
	case integer:
		if f != math.Trunc(f) {
			return WrongType
		}
		if f < lo || f > hi {
			return OutOfRange
		}
	case in.Type == tag.Float32:
		if math.Abs(f) > math.MaxFloat32 {
			return OutOfRange
		}
	}
	if f < in.Min || f > in.Max {
		return OutOfRange
	}
	return Applied
}

// Explain says why v does not suit the tag, in the words of its status s
// (from CheckWrite or CheckValue): "4.5 is above max 4", "2.5 is not a
// whole number; the tag is int16".
func Explain(in *tag.Info, v Value, s Status) string {
	switch s {
	case Applied:
		return "accepted"
	case ReadOnly:
		return "the tag is not writable"
	case WrongType:
		switch {
		case in.Type == tag.String:
			return fmt.Sprintf("%v is not text; the tag is a string", v)
		case v.IsText:
			return fmt.Sprintf("text %q for a %s tag", v.Text, in.Type)
		case math.IsNaN(v.Num) || math.IsInf(v.Num, 0):
			return fmt.Sprintf("%v is not a number", v.Num)
		case in.Type == tag.Bool:
			return fmt.Sprintf("%v is not a bool (0 or 1)", v.Num)
		}
		return fmt.Sprintf("%v is not a whole number; the tag is %s", v.Num, in.Type)
	case OutOfRange:
		if v.IsText {
			return fmt.Sprintf("%d bytes is longer than the tag's length %d", len(v.Text), in.Length)
		}
		if lo, hi, ok := in.Type.IntRange(); ok && (v.Num < lo || v.Num > hi) {
			return fmt.Sprintf("%v is outside the range of %s (%g to %g)", v.Num, in.Type, lo, hi)
		}
		if in.Type == tag.Float32 && math.Abs(v.Num) > math.MaxFloat32 {
			return fmt.Sprintf("%v is outside the range of float32", v.Num)
		}
		if v.Num < in.Min {
			return fmt.Sprintf("%v is below min %g", v.Num, in.Min)
		}
		return fmt.Sprintf("%v is above max %g", v.Num, in.Max)
	}
	return s.String()
}

// Refuse is the error for a write that CheckWrite refused with s, naming
// the tag and why.
func Refuse(in *tag.Info, v Value, s Status) error {
	return &RejectedError{Result: Result{Status: s}, Tag: in.Name, Detail: Explain(in, v, s)}
}
