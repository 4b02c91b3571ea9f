// Package vmtest is what the vm backend's tests (and the hand-over tests
// of supervisor/deploy) share: a field network for guests that keeps the
// field devices off the host's own interfaces. NewField creates a network
// namespace holding the devices' end of a veth pair and a host bridge,
// with no address of the host's, whose ports are that veth's other end and
// the guests' taps (vm.Options.Bridge, nics[].bridge):
//
//	guest ─ virtio ─ tap (host ns) ─┐
//	guest ─ virtio ─ tap (host ns) ─┼─ bridge (host ns, no address) ─ veth ═ field0 (test's netns): simulator on .1
//
// A tap must be in QEMU's namespace to be opened by name (-netdev
// tap,ifname=), and a bridge's ports are in its namespace, so the bridge
// is the host's; the addresses are all inside the guests and the
// namespace. It needs Linux and root (CAP_NET_ADMIN), and skips the test
// with the reason otherwise.
package vmtest
