// Command mkrt-init is PID 1 of the application kernel: it prepares the
// kernel (rtkernel/pid1), runs the executive on the shared region, feeds
// the kernel's watchdog while the executive cycles (mkrt.watchdog=), and
// powers the kernel off when the executive stops. Built static:
// CGO_ENABLED=0 go build ./cmd/mkrt-init.
package main

import (
	"fmt"
	"log/slog"
	"os"
)

func main() {
	log := slog.New(slog.NewTextHandler(console(), nil))
	if err := run(log); err != nil {
		fmt.Fprintln(console(), "mkrt-init: fatal:", err)
		log.Error("fatal", "err", err)
	}
	halt(log)
}

func console() *os.File {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		return f
	}
	return os.Stderr
}
