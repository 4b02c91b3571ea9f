package process

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// LinuxNet is the real Net: netlink on the root namespace this process was
// in when it was made, named namespaces under /run/netns.
type LinuxNet struct{ root netns.NsHandle }

// NewLinuxNet opens the calling process's network namespace as the root
// the links return to.
func NewLinuxNet() (Net, error) {
	var h netns.NsHandle
	var err error
	// A fresh locked thread has the process's namespace.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		h, err = netns.Get()
	}()
	<-done
	if err != nil {
		return nil, fmt.Errorf("process: netns: open own namespace: %w", err)
	}
	return &LinuxNet{root: h}, nil
}

// onThread runs fn on a new locked OS thread. When fn leaves the thread in
// another namespace (ok false), the thread is not handed back to the
// scheduler: the goroutine exits locked and Go discards the thread.
func onThread(fn func() (ok bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ok, err := fn()
		if ok {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// NewNS creates /run/netns/<name> without moving any thread of ours into it.
func (n *LinuxNet) NewNS(name string) error {
	return onThread(func() (bool, error) {
		h, err := netns.NewNamed(name) // also switches this thread
		if err != nil {
			return true, fmt.Errorf("process: netns: create %s: %w", name, err)
		}
		h.Close()
		if err := netns.Set(n.root); err != nil {
			return false, fmt.Errorf("process: netns: setns back to root: %w", err)
		}
		return true, nil
	})
}

// DeleteNS removes the named namespace.
func (n *LinuxNet) DeleteNS(name string) error {
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("process: netns: delete %s: %w", name, err)
	}
	return nil
}

func (n *LinuxNet) handle(ns string) (*netlink.Handle, netns.NsHandle, error) {
	if ns == "" {
		h, err := netlink.NewHandleAt(n.root)
		return h, -1, err
	}
	nh, err := netns.GetFromName(ns)
	if err != nil {
		return nil, -1, fmt.Errorf("process: netns: open %s: %w", ns, err)
	}
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		nh.Close()
		return nil, -1, fmt.Errorf("process: netlink in %s: %w", ns, err)
	}
	return h, nh, nil
}

// LinkState reads a root-namespace link.
func (n *LinuxNet) LinkState(link string) (LinkState, error) {
	h, _, err := n.handle("")
	if err != nil {
		return LinkState{}, fmt.Errorf("process: netlink: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(link)
	if err != nil {
		return LinkState{}, fmt.Errorf("process: nic %s: %w", link, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return LinkState{}, fmt.Errorf("process: nic %s: list addresses: %w", link, err)
	}
	st := LinkState{Up: l.Attrs().Flags&net.FlagUp != 0}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			continue
		}
		st.Addrs = append(st.Addrs, a.IPNet.String())
	}
	return st, nil
}

// MoveLink moves link into ns and configures it there.
func (n *LinuxNet) MoveLink(link, ns, addr, gw string) error {
	root, _, err := n.handle("")
	if err != nil {
		return fmt.Errorf("process: netlink: %w", err)
	}
	defer root.Close()
	l, err := root.LinkByName(link)
	if err != nil {
		return fmt.Errorf("process: nic %s: %w", link, err)
	}
	h, nh, err := n.handle(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	defer h.Close()
	if err := root.LinkSetNsFd(l, int(nh)); err != nil {
		return fmt.Errorf("process: nic %s: move into %s: %w", link, ns, err)
	}
	return configure(h, link, LinkState{Addrs: nonEmpty(addr), Up: true}, gw)
}

// ReturnLink moves link from ns back to the root namespace and restores st.
func (n *LinuxNet) ReturnLink(link, ns string, st LinkState) error {
	h, nh, err := n.handle(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	defer h.Close()
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("process: nic %s in %s: %w", link, ns, err)
	}
	if err := h.LinkSetNsFd(l, int(n.root)); err != nil {
		return fmt.Errorf("process: nic %s: move back from %s: %w", link, ns, err)
	}
	root, _, err := n.handle("")
	if err != nil {
		return fmt.Errorf("process: netlink: %w", err)
	}
	defer root.Close()
	return configure(root, link, st, "")
}

func configure(h *netlink.Handle, link string, st LinkState, gw string) error {
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("process: nic %s: %w", link, err)
	}
	var errs []error
	for _, a := range st.Addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("process: nic %s: address %q: %w", link, a, err))
			continue
		}
		if err := h.AddrAdd(l, addr); err != nil {
			errs = append(errs, fmt.Errorf("process: nic %s: add %s: %w", link, a, err))
		}
	}
	if st.Up {
		if err := h.LinkSetUp(l); err != nil {
			errs = append(errs, fmt.Errorf("process: nic %s: set up: %w", link, err))
		}
		if lo, err := h.LinkByName("lo"); err == nil {
			_ = h.LinkSetUp(lo)
		}
	}
	if gw != "" {
		ip := net.ParseIP(gw)
		if ip == nil {
			errs = append(errs, fmt.Errorf("process: nic %s: gateway %q is not an IP address", link, gw))
		} else if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: ip}); err != nil {
			errs = append(errs, fmt.Errorf("process: nic %s: default route via %s: %w", link, gw, err))
		}
	}
	return errors.Join(errs...)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Do runs fn on a locked thread switched into ns; processes fn starts
// (fork happens on the calling thread) are born in ns.
func (n *LinuxNet) Do(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("process: netns: open %s: %w", ns, err)
	}
	defer target.Close()
	return onThread(func() (bool, error) {
		if err := netns.Set(target); err != nil {
			return true, fmt.Errorf("process: netns: setns %s: %w", ns, err)
		}
		ferr := fn()
		if err := netns.Set(n.root); err != nil {
			return false, errors.Join(ferr, fmt.Errorf("process: netns: setns back to root: %w", err))
		}
		return true, ferr
	})
}
