// Package boards holds the reference board definitions that partitions are
// planned against: CPU topology, which cores partitions get, the recommended
// host kernel command line, the NICs to dedicate, and a latency budget.
//
// Definitions are embedded; users add their own as YAML files. Nothing here
// needs privileges.
package boards

import (
	"fmt"
	"sort"
	"time"
)

// Board is one reference board.
type Board struct {
	Name        string
	Description string
	Arch        string // GOARCH-style: amd64, arm64
	// CPUs is how many logical CPUs the board has.
	CPUs int
	// PartitionCPUs are the cores given to partitions by default.
	PartitionCPUs []int
	// MinPeriod is the shortest task period the board sustains.
	MinPeriod time.Duration
	// Budget is the expected worst-case wake-up latency.
	Budget time.Duration
}

var builtin = map[string]Board{
	"generic-x86_64": {Name: "generic-x86_64", Description: "generic x86-64 industrial PC", Arch: "amd64", CPUs: 64, PartitionCPUs: []int{1}, MinPeriod: 100 * time.Microsecond, Budget: 100 * time.Microsecond},
	"qemu-x86_64":    {Name: "qemu-x86_64", Description: "QEMU x86-64 guest", Arch: "amd64", CPUs: 2, PartitionCPUs: []int{1}, MinPeriod: 500 * time.Microsecond, Budget: 2 * time.Millisecond},
	"rpi4":           {Name: "rpi4", Description: "Raspberry Pi 4 Model B", Arch: "arm64", CPUs: 4, PartitionCPUs: []int{3}, MinPeriod: 250 * time.Microsecond, Budget: 150 * time.Microsecond},
	"rpi5":           {Name: "rpi5", Description: "Raspberry Pi 5", Arch: "arm64", CPUs: 4, PartitionCPUs: []int{3}, MinPeriod: 200 * time.Microsecond, Budget: 100 * time.Microsecond},
}

// Default is the board used when a config names none.
const Default = "generic-x86_64"

// Lookup returns the named built-in board.
func Lookup(name string) (Board, error) {
	b, ok := builtin[name]
	if !ok {
		return Board{}, fmt.Errorf("boards: unknown board %q (known: %v)", name, Names())
	}
	return b, nil
}

// Names lists the built-in boards.
func Names() []string {
	var n []string
	for k := range builtin {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
