//go:build !linux

package vmtest

import (
	"context"
	"errors"
	"testing"

	"github.com/mkrt/mkrt/io/sim"
)

// NewField skips t: a field network needs Linux.
func NewField(t testing.TB, subnet string) *Field {
	t.Skip("vmtest: a field network needs Linux (network namespaces, bridges, taps)")
	return nil
}

// Do fails: there is no field namespace.
func (f *Field) Do(fn func() error) error { return errors.New("vmtest: a field network needs Linux") }

// StartSim skips t.
func (f *Field) StartSim(t testing.TB, ctx context.Context, model sim.Model, port int, speed float64) *sim.Server {
	t.Skip("vmtest: a field network needs Linux")
	return nil
}

// Neighbors fails: there is no field namespace.
func (f *Field) Neighbors() (map[string]string, error) {
	return nil, errors.New("vmtest: a field network needs Linux")
}
