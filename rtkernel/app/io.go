package app

import (
	"sync"
	"time"

	"github.com/mkrt/mkrt/io/modbus"
	"github.com/mkrt/mkrt/shm/tag"
)

// fieldIO is the executive's IO over the devices' scanners. The scanners'
// hand-offs are wait-free; the mutex only orders the rare case of two tasks
// of one partition touching the same scanner in the same instant (both are
// real-time threads of this partition; the general side never holds it).
type fieldIO struct {
	mu       sync.Mutex
	scanners []*modbus.Scanner
}

// ReadInputs copies the latest device values into tab. Hot path.
func (f *fieldIO) ReadInputs(tab *tag.Table, _ time.Time) {
	f.mu.Lock()
	for _, s := range f.scanners {
		s.Latest(tab.Samples, tab.Text)
	}
	f.mu.Unlock()
}

// WriteOutputs hands the outputs to the scanners' goroutines. Hot path.
func (f *fieldIO) WriteOutputs(tab *tag.Table, _ []tag.ID) {
	f.mu.Lock()
	for _, s := range f.scanners {
		s.SetOutputs(tab.Samples, tab.Text)
	}
	f.mu.Unlock()
}
