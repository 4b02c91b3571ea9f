//go:build linux

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mkrt/mkrt/rtkernel/pid1"
)

func runExecutive(ctx context.Context, log *slog.Logger, boot *pid1.Boot, shm pid1.ShmLocation) error {
	return errors.New("executive not linked into this mkrt-init build")
}
