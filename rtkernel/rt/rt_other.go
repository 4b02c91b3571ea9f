//go:build !linux

package rt

func mlockall() error                 { return ErrNotSupported }
func munlockall()                     {}
func holdDMALatency() (func(), error) { return nil, ErrNotSupported }
func setAffinity(int) error           { return ErrNotSupported }
func setFIFO(int) error               { return ErrNotSupported }
func setTimerSlack() error            { return ErrNotSupported }
