//go:build !linux

package load

import (
	"context"
	"fmt"
)

func startStress(_ context.Context, k Kind, _ Options) (*Load, error) {
	return nil, fmt.Errorf("load: %s: %w (stress-ng loads need Linux process groups)", k, ErrUnsupported)
}
