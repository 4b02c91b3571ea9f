//go:build !linux

package main

import (
	"errors"
	"log/slog"
	"os"
)

func run(*slog.Logger) error { return errors.New("mkrt-init runs only on Linux") }

func halt(*slog.Logger) { os.Exit(1) }
