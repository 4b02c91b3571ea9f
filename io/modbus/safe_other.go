//go:build !linux

package modbus

import (
	"context"

	"github.com/mkrt/mkrt/configs"
)

// startDial dials dev on the calling goroutine with the device's dialer,
// bounded by its timeout: without Linux's non-blocking connect on a
// detached socket, DriveSafe's devices connect one after another.
func startDial(ctx context.Context, dev *configs.Device) connector {
	return dialNow(ctx, newDialer(dev), dev)
}
