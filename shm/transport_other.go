//go:build !linux

package shm

import (
	"fmt"
	"os"
)

// Open maps the region at loc. Only Linux is supported.
func Open(loc Location) (*Region, error) {
	return nil, fmt.Errorf("shm: open %s: %w", loc, ErrUnsupported)
}

// CreateFile creates the region file at path. Only Linux is supported.
func CreateFile(path string, size int64) (*os.File, error) {
	return nil, fmt.Errorf("shm: create %s: %w", path, ErrUnsupported)
}
