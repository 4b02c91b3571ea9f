//go:build !linux

package pid1

import (
	"fmt"
	"time"
)

// OpenWatchdog is Linux-only.
func OpenWatchdog(path string, timeout time.Duration) (Watchdog, error) {
	return nil, fmt.Errorf("pid1: watchdog %s: not supported on this platform", path)
}
