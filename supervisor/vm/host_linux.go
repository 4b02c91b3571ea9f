//go:build linux

package vm

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// createTap creates the tap name and either gives it cidr or, with
// bridge, makes it a port of that existing bridge with no address of the
// host's (IPv6 address generation off too).
func createTap(name, cidr, bridge string) error {
	var br netlink.Link
	if bridge != "" {
		l, err := netlink.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("vm: tap %s: bridge %s: %w (create it first: ip link add %s type bridge)", name, bridge, err, bridge)
		}
		if l.Type() != "bridge" {
			return fmt.Errorf("vm: tap %s: %s is a %s, not a bridge", name, bridge, l.Type())
		}
		br = l
	}
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS}
	if err := netlink.LinkAdd(tap); err != nil {
		return fmt.Errorf("vm: create tap %s: %w (needs root)", name, err)
	}
	fail := func(err error) error {
		_ = netlink.LinkDel(tap)
		return err
	}
	if br != nil {
		if err := netlink.LinkSetIP6AddrGenMode(tap, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return fail(fmt.Errorf("vm: tap %s: IPv6 address generation off: %w", name, err))
		}
		if err := netlink.LinkSetMaster(tap, br); err != nil {
			return fail(fmt.Errorf("vm: tap %s: join bridge %s: %w", name, bridge, err))
		}
	} else if cidr != "" {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			return fail(fmt.Errorf("vm: tap %s address %q: %w", name, cidr, err))
		}
		if err := netlink.AddrAdd(tap, addr); err != nil {
			return fail(fmt.Errorf("vm: tap %s: add %s: %w", name, cidr, err))
		}
	}
	if err := netlink.LinkSetUp(tap); err != nil {
		return fail(fmt.Errorf("vm: tap %s up: %w", name, err))
	}
	return nil
}

func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

func pinThread(tid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		return fmt.Errorf("sched_setaffinity(%d, cpu %d): %w", tid, cpu, err)
	}
	return nil
}
