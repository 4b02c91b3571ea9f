//go:build !linux

package rt

func mlockall() error                 { return ErrNotSupported }
func munlockall()                     {}
func holdDMALatency() (func(), error) { return nil, ErrNotSupported }
func setAffinity(int) error           { return ErrNotSupported }
func setFIFO(int) error               { return ErrNotSupported }
func yieldCPU()                       {}
func setPriorityRaw(int) error        { return ErrNotSupported }
func setAffinityRaw(*CPUMask) error   { return ErrNotSupported }
func threadMask() (CPUMask, error)    { return CPUMask{}, ErrNotSupported }
func setTimerSlack() error            { return ErrNotSupported }

// Tid is 0 where threads have no id.
func Tid() int { return 0 }

func housekeep([]int, []int) (string, func(), error) { return "", nil, ErrNotSupported }
