package configs

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a config, at the place it was written.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errors is every problem found in a config, in file order.
type Errors []*Error

// Add records a problem at pos.
func (es *Errors) Add(pos Pos, format string, args ...any) {
	*es = append(*es, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// AddErr records the problems of err: each of its Errors where it was
// written, any other error at the zero Pos. A nil err adds nothing.
func (es *Errors) AddErr(err error) {
	var errs Errors
	switch {
	case err == nil:
	case errors.As(err, &errs):
		*es = append(*es, errs...)
	default:
		es.Add(Pos{}, "%v", err)
	}
}

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err sorts the problems by position and returns them, or nil when there are none.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return es
}
