package configs

import "sort"

// Warnings are what is valid but leaves the plant exposed, with positions:
// today, outputs in watchdog.safe_state on a field device that only the
// partition can reach and that has no comm-loss watchdog of its own. When
// such a partition dies, the supervisor cannot drive those outputs to
// their safe values (the dedicated NIC belongs to a second kernel, a
// Jailhouse cell or a passed-through PCI device) and nothing else will.
func (c *Config) Warnings() Errors {
	var ws Errors
	reachable := c.Partition.Backend == BackendProcess || c.Partition.Backend == ""
	if c.Partition.Backend == BackendVM {
		// A tap with a host address is reachable from the host; a
		// passed-through PCI NIC is not, nor a tap on a bridge the host
		// has no address on.
		reachable = true
		for _, n := range c.Partition.NICs {
			if n.PCI != "" || n.Bridge != "" {
				reachable = false
			}
		}
	}
	if reachable || len(c.Partition.NICs) == 0 {
		return nil
	}
	devOf := map[string]*Device{}
	for i := range c.Devices {
		for _, t := range c.Devices[i].Tags {
			devOf[t.Name] = &c.Devices[i]
		}
	}
	warned := map[string]bool{}
	names := make([]string, 0, len(c.Watchdog.SafeState))
	for name := range c.Watchdog.SafeState {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d := devOf[name]
		if d == nil || d.Watchdog.Enabled() || warned[d.Name] {
			continue
		}
		warned[d.Name] = true
		keyPos, _ := c.EntryPos(c.Watchdog.SafeState, name, c.Watchdog.Pos)
		ws.Add(keyPos, "safe_state of %s: device %s is reached only through the partition's NIC, which the %s backend gives to the partition: when the partition dies the supervisor cannot drive it safe; configure the device's own comm-loss watchdog (devices[].watchdog) so it goes safe by itself",
			name, d.Name, c.Partition.Backend)
	}
	return ws
}
