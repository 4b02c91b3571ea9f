package supervisortest

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mkrt/mkrt/supervisor/process"
)

// Net is a fake of process.Net: a set of namespaces and links with their
// addresses. Fail makes an operation ("newns", "movelink", "returnlink",
// "deletens", "linkstate", "do") fail.
type Net struct {
	mu    sync.Mutex
	ns    map[string]bool
	links map[string]*fakeLink
	fail  map[string]error
	log   []string
}

type fakeLink struct {
	ns    string // "" = root
	addrs []string
	up    bool
}

// NewNet returns a root namespace holding the named links, each up with
// the given address (may be "").
func NewNet(links map[string]string) *Net {
	n := &Net{ns: map[string]bool{}, links: map[string]*fakeLink{}, fail: map[string]error{}}
	for name, addr := range links {
		l := &fakeLink{up: true}
		if addr != "" {
			l.addrs = []string{addr}
		}
		n.links[name] = l
	}
	return n
}

// Fail makes op fail with err (nil clears it).
func (n *Net) Fail(op string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		delete(n.fail, op)
	} else {
		n.fail[op] = err
	}
}

func (n *Net) op(op string, args ...any) error {
	n.log = append(n.log, fmt.Sprint(append([]any{op}, args...)...))
	return n.fail[op]
}

// Log returns the operations so far.
func (n *Net) Log() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.log...)
}

// NewNS creates a namespace.
func (n *Net) NewNS(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.op("newns", " ", name); err != nil {
		return err
	}
	if n.ns[name] {
		return fmt.Errorf("fake net: namespace %s exists", name)
	}
	n.ns[name] = true
	return nil
}

// DeleteNS deletes a namespace; links still in it vanish (as physical
// links would return to the root, which the real code must do itself).
func (n *Net) DeleteNS(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.op("deletens", " ", name); err != nil {
		return err
	}
	if !n.ns[name] {
		return fmt.Errorf("fake net: no namespace %s", name)
	}
	delete(n.ns, name)
	return nil
}

// LinkState reads a root-namespace link.
func (n *Net) LinkState(link string) (process.LinkState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.op("linkstate", " ", link); err != nil {
		return process.LinkState{}, err
	}
	l, ok := n.links[link]
	if !ok || l.ns != "" {
		return process.LinkState{}, fmt.Errorf("fake net: no link %s in the root namespace", link)
	}
	return process.LinkState{Addrs: slices.Clone(l.addrs), Up: l.up}, nil
}

// MoveLink moves a link into ns and configures it.
func (n *Net) MoveLink(link, ns, addr, gw string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.op("movelink", " ", link, " ", ns, " ", addr); err != nil {
		return err
	}
	l, ok := n.links[link]
	if !ok || l.ns != "" || !n.ns[ns] {
		return fmt.Errorf("fake net: cannot move %s into %s", link, ns)
	}
	l.ns, l.addrs, l.up = ns, nil, true
	if addr != "" {
		l.addrs = []string{addr}
	}
	return nil
}

// ReturnLink moves a link back and restores st.
func (n *Net) ReturnLink(link, ns string, st process.LinkState) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.op("returnlink", " ", link, " ", ns); err != nil {
		return err
	}
	l, ok := n.links[link]
	if !ok || l.ns != ns {
		return fmt.Errorf("fake net: %s is not in %s", link, ns)
	}
	l.ns, l.addrs, l.up = "", slices.Clone(st.Addrs), st.Up
	return nil
}

// Do runs fn (the fake has no threads to switch).
func (n *Net) Do(ns string, fn func() error) error {
	n.mu.Lock()
	err := n.op("do", " ", ns)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	return fn()
}

// Where returns the namespace of a link ("" = root), its addresses and up state.
func (n *Net) Where(link string) (ns string, addrs []string, up bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.links[link]
	if !ok {
		return "", nil, false, errors.New("fake net: no such link")
	}
	return l.ns, slices.Clone(l.addrs), l.up, nil
}

// Namespaces lists the existing namespaces.
func (n *Net) Namespaces() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for k := range n.ns {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
