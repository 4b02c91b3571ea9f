//go:build linux

package vmtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"

	"github.com/mkrt/mkrt/io/sim"
)

// NewField creates a field network on subnet (e.g. "10.213.9.0/24"),
// removed when the test ends (pass or fail); first it removes what tests
// killed before their cleanup left behind. Without root it skips t.
func NewField(t testing.TB, subnet string) *Field {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace, a bridge and taps")
	}
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil {
		t.Fatalf("vmtest: subnet %q: %v", subnet, err)
	}
	sweep(t)
	pid := strconv.Itoa(os.Getpid())
	f := &Field{Bridge: bridgePrefix + pid, Prefix: prefix.Masked(), veth: vethPrefix + pid}

	ns, err := newNetNS()
	if err != nil {
		t.Fatal(err)
	}
	f.ns = int(ns)
	t.Cleanup(func() { ns.Close() }) // the namespace goes with its last user

	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: f.Bridge}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatalf("vmtest: create bridge %s: %v", f.Bridge, err)
	}
	t.Cleanup(func() { deleteLink(t, f.Bridge) })
	if err := netlink.LinkSetIP6AddrGenMode(br, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		t.Fatalf("vmtest: bridge %s: IPv6 address generation off: %v", f.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatalf("vmtest: bridge %s up: %v", f.Bridge, err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: f.veth, MasterIndex: br.Attrs().Index}, PeerName: DeviceIface, PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("vmtest: create veth %s/%s: %v", f.veth, DeviceIface, err)
	}
	t.Cleanup(func() { deleteLink(t, f.veth) })
	if err := netlink.LinkSetIP6AddrGenMode(veth, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		t.Fatalf("vmtest: veth %s: IPv6 address generation off: %v", f.veth, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatalf("vmtest: veth %s up: %v", f.veth, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("vmtest: netlink in the field namespace: %v", err)
	}
	defer h.Close()
	for _, name := range []string{"lo", DeviceIface} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("vmtest: field namespace: %s: %v", name, err)
		}
		if name == DeviceIface {
			addr, _ := netlink.ParseAddr(f.Addr(1))
			if err := h.AddrAdd(l, addr); err != nil {
				t.Fatalf("vmtest: field namespace: %s: add %s: %v", name, f.Addr(1), err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("vmtest: field namespace: %s up: %v", name, err)
		}
	}
	return f
}

// Do runs fn on a thread inside the field namespace and returns its
// error; sockets fn opens stay in the namespace.
func (f *Field) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine instead of
		// going back to the runtime in the wrong namespace.
		runtime.LockOSThread()
		if err := netns.Set(netns.NsHandle(f.ns)); err != nil {
			errc <- fmt.Errorf("vmtest: setns(field namespace): %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// StartSim serves model as a Modbus TCP device on the devices' address
// and port inside the namespace, until the test ends.
func (f *Field) StartSim(t testing.TB, ctx context.Context, model sim.Model, port int, speed float64) *sim.Server {
	t.Helper()
	var srv *sim.Server
	err := f.Do(func() error {
		var err error
		srv, err = sim.Start(ctx, model, sim.Config{Listen: fmt.Sprintf("%s:%d", f.Device(), port), Speed: speed})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// Neighbors is the devices' neighbour table: each guest's IP address on
// the field network and the MAC it answered ARP with.
func (f *Field) Neighbors() (map[string]string, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(f.ns))
	if err != nil {
		return nil, fmt.Errorf("vmtest: netlink in the field namespace: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(DeviceIface)
	if err != nil {
		return nil, fmt.Errorf("vmtest: field namespace: %s: %w", DeviceIface, err)
	}
	neighs, err := h.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("vmtest: field namespace: neighbours of %s: %w", DeviceIface, err)
	}
	m := map[string]string{}
	for _, n := range neighs {
		if len(n.HardwareAddr) > 0 {
			m[n.IP.String()] = n.HardwareAddr.String()
		}
	}
	return m, nil
}

// newNetNS returns a new network namespace, held by its handle only.
func newNetNS() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread moved namespace
		ns, err := netns.New()
		if err != nil {
			err = fmt.Errorf("vmtest: unshare(CLONE_NEWNET): %w", err)
		}
		c <- result{ns, err}
	}()
	r := <-c
	return r.ns, r.err
}

func deleteLink(t testing.TB, name string) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return // gone already (a veth with its namespace)
	}
	if err := netlink.LinkDel(l); err != nil {
		t.Errorf("vmtest: delete %s: %v", name, err)
	}
}

// sweep deletes the bridges, veths and taps of test processes that no
// longer exist.
func sweep(t testing.TB) {
	links, err := netlink.LinkList()
	if err != nil {
		return
	}
	for _, l := range links {
		name := l.Attrs().Name
		var rest string
		var ok bool
		for _, p := range []string{bridgePrefix, vethPrefix, TapPrefix} {
			if rest, ok = strings.CutPrefix(name, p); ok {
				break
			}
		}
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, "-")
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat("/proc/" + rest); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := netlink.LinkDel(l); err == nil {
			t.Logf("vmtest: removed %s, left by test process %d", name, pid)
		}
	}
}
