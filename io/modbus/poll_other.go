//go:build !linux

package modbus

import "syscall"

// waitReadable does nothing: reads wait in the runtime's network poller.
func (t *transport) waitReadable() {}

func rawConn(any) syscall.RawConn { return nil }

type pollFds = [1]struct{}
