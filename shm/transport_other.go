//go:build !linux

package shm

import "fmt"

// Open maps the region at loc. Only Linux is supported.
func Open(loc Location) (*Region, error) {
	return nil, fmt.Errorf("shm: open %s: %w", loc, ErrUnsupported)
}
