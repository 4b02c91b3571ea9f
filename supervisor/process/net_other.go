//go:build !linux

package process

import "fmt"

// NewLinuxNet fails off Linux: network namespaces are a Linux feature.
func NewLinuxNet() (Net, error) {
	return nil, fmt.Errorf("process: netns: %w", ErrUnsupported)
}
