//go:build linux

package vm

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func createTap(name, cidr string) error {
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS}
	if err := netlink.LinkAdd(tap); err != nil {
		return fmt.Errorf("vm: create tap %s: %w (needs root)", name, err)
	}
	if cidr != "" {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			_ = netlink.LinkDel(tap)
			return fmt.Errorf("vm: tap %s address %q: %w", name, cidr, err)
		}
		if err := netlink.AddrAdd(tap, addr); err != nil {
			_ = netlink.LinkDel(tap)
			return fmt.Errorf("vm: tap %s: add %s: %w", name, cidr, err)
		}
	}
	if err := netlink.LinkSetUp(tap); err != nil {
		_ = netlink.LinkDel(tap)
		return fmt.Errorf("vm: tap %s up: %w", name, err)
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
