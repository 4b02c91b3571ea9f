package process

// Net is the seam to the kernel's network namespaces and links
// (netlink/netns on Linux, supervisortest.Net in tests).
type Net interface {
	// NewNS creates the named network namespace (/run/netns/<name>).
	NewNS(name string) error
	// DeleteNS deletes it.
	DeleteNS(name string) error
	// LinkState reads a link of the root namespace: its addresses and up state.
	LinkState(link string) (LinkState, error)
	// MoveLink moves link from the root namespace into ns, assigns addr
	// (CIDR, may be empty) and gw (may be empty), and sets it and lo up.
	MoveLink(link, ns, addr, gw string) error
	// ReturnLink moves link from ns back to the root namespace and restores st.
	ReturnLink(link, ns string, st LinkState) error
	// Do runs fn on an OS thread inside ns: a process started by fn
	// inherits the namespace. ns "" runs fn directly.
	Do(ns string, fn func() error) error
}

// LinkState is what is restored when a link comes back.
type LinkState struct {
	// Addrs are the link's addresses in CIDR form (link-local IPv6 excluded:
	// the kernel recreates it).
	Addrs []string
	Up    bool
}
