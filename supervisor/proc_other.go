//go:build !linux

package supervisor

import "fmt"

func watchPID(pid int) (<-chan struct{}, error) {
	return nil, fmt.Errorf("supervisor: watching pid %d: not supported on this platform", pid)
}
