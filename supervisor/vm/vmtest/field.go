package vmtest

import (
	"net/netip"
	"os"
	"strconv"
)

// Name prefixes of what tests create in the host namespace, followed by
// the test process's pid (so leftovers of a killed run can be told from a
// running one's).
const (
	// TapPrefix names a test's taps: TapPrefix<pid>, and <that>-<n> for a
	// later generation's.
	TapPrefix    = "mkrtt"
	bridgePrefix = "mkrtfb"
	vethPrefix   = "mkrtfv"
)

// DeviceIface is the devices' interface inside the field namespace.
const DeviceIface = "field0"

// Field is a field network in a network namespace of the test's, behind a
// host bridge guests' taps join.
type Field struct {
	// Bridge is the host bridge the guests' taps join.
	Bridge string
	// Prefix is the field subnet; the devices are at its first address.
	Prefix netip.Prefix
	ns     int // the namespace's file descriptor (Linux)
	veth   string
}

// Tap is the name of this test process's guest tap.
func Tap() string { return TapPrefix + strconv.Itoa(os.Getpid()) }

// Addr is the n-th address of the field subnet in CIDR form.
func (f *Field) Addr(n int) string {
	a := f.Prefix.Addr()
	for range n {
		a = a.Next()
	}
	return netip.PrefixFrom(a, f.Prefix.Bits()).String()
}

// Device is the devices' address (the subnet's first), without the prefix.
func (f *Field) Device() string { return f.Prefix.Addr().Next().String() }
