package deploy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
)

func TestPlanHandOver(t *testing.T) {
	// The tank example on the vm backend with its NIC given as below.
	vmNIC := func(nic string) []string { return []string{"backend: process", "backend: vm\n  nics: [" + nic + "]"} }
	const tapInBridge = "{interface: mkrt-tank0, address: 10.213.0.2/24, bridge: br-field, standby_address: 10.213.0.3/24}"
	bridged, bridgedNIC := vmNIC(tapInBridge), "  nics: ["+tapInBridge+"]"
	held := supervisor.Status{Isolation: supervisor.Isolation{CPUSet: "v1 exclusive"}}
	free := supervisor.Status{Isolation: supervisor.Isolation{CPUSet: "none"}}
	kernelHeld := supervisor.Status{Isolation: supervisor.Isolation{CPUSet: "multikernel instance"}}
	for _, tc := range []struct {
		name    string
		old     []string // the running config: the example with these replacements
		replace []string
		st      supervisor.Status
		backend configs.Backend
		cpus    string
		standby bool
		err     string
	}{
		{name: "standby cpus", replace: []string{`cpus: "1"`, "cpus: \"1\"\n  standby_cpus: \"0\""}, st: held, cpus: "0", standby: true},
		{name: "same cpus, none held", st: free, cpus: "1"},
		{name: "same cpus, held", st: held, err: "standby_cpus"},
		{name: "moved cpus", replace: []string{`cpus: "1"`, `cpus: "0"`}, st: held, cpus: "0"},
		{name: "period", replace: []string{"period: 20ms", "period: 10ms"}, st: free, err: "period changes"},
		{name: "name", replace: []string{"name: tank-level", "name: other"}, st: free, err: "metadata.name"},
		{name: "backend override", st: free, backend: configs.BackendVM, cpus: "1"},
		{name: "backend change", replace: []string{"backend: process", "backend: vm"}, st: free, err: "backend changes from process to vm"},
		{name: "second kernel, held", replace: []string{"backend: process", "backend: multikernel"}, st: kernelHeld, backend: configs.BackendMultikernel, err: "standby_cpus"},
		{name: "second kernel, standby cpus", replace: []string{"backend: process", "backend: multikernel", `cpus: "1"`, "cpus: \"1\"\n  standby_cpus: \"0\""}, st: kernelHeld, backend: configs.BackendMultikernel, cpus: "0", standby: true},
		{name: "jailhouse", replace: []string{"backend: process", "backend: jailhouse"}, st: free, backend: configs.BackendJailhouse, err: "does not hand over on jailhouse"},
		// A NIC cannot serve two partitions; a vm guest's tap in a bridge is
		// the guest's own, so a second guest gets a second one there.
		{name: "process nic", old: []string{"cpus: \"1\"", "cpus: \"1\"\n  nics: [{interface: eth1, address: 10.0.0.2/24}]"},
			replace: []string{"cpus: \"1\"", "cpus: \"1\"\n  nics: [{interface: eth1, address: 10.0.0.2/24}]"}, st: free, err: "cannot be in two partitions at once; stop"},
		{name: "vm tap in a bridge", old: bridged, replace: bridged, st: free, cpus: "1"},
		{name: "vm tap in a bridge, backend override", old: []string{"cpus: \"1\"", "cpus: \"1\"\n" + bridgedNIC}, replace: []string{"cpus: \"1\"", "cpus: \"1\"\n" + bridgedNIC},
			st: free, backend: configs.BackendVM, cpus: "1"},
		{name: "vm routed tap", old: vmNIC("{interface: t0, address: 10.213.0.2/30, host_address: 10.213.0.1/30}"),
			replace: vmNIC("{interface: t0, address: 10.213.0.2/30, host_address: 10.213.0.1/30}"), st: free, err: "a tap in a bridge, nics[].bridge, can be"},
		{name: "vm pci", old: vmNIC("{pci: \"0000:03:00.0\", address: 10.0.0.2/24}"), replace: vmNIC("{pci: \"0000:03:00.0\", address: 10.0.0.2/24}"),
			st: free, err: "cannot be in two partitions at once"},
		{name: "vm bridge without standby address", old: vmNIC("{interface: t0, address: 10.213.0.2/24, bridge: br0}"),
			replace: vmNIC("{interface: t0, address: 10.213.0.2/24, bridge: br0}"), st: free, err: "set its standby_address"},
		{name: "vm nic changes", old: bridged, replace: vmNIC("{interface: mkrt-tank0, address: 10.213.0.2/24, bridge: br-other, standby_address: 10.213.0.3/24}"),
			st: free, err: "partition.nics change"},
		{name: "vm nic added", old: []string{"backend: process", "backend: vm"}, replace: bridged, st: free, err: "partition.nics change"},
		{name: "multikernel nic", old: []string{"backend: process", "backend: multikernel\n  nics: [{interface: eth1, bridge: br0, standby_address: 10.0.0.3/24, address: 10.0.0.2/24}]"},
			replace: []string{"backend: process", "backend: multikernel\n  nics: [{interface: eth1, bridge: br0, standby_address: 10.0.0.3/24, address: 10.0.0.2/24}]"},
			st:      free, backend: configs.BackendMultikernel, err: "cannot be in two partitions at once; stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := loadExample(t, tc.old...)
			nc := loadExample(t, tc.replace...)
			p, err := planHandOver(old, nc, old.Partition.CPUs, tc.st, tc.backend)
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrNoHandOver) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("plan = %+v, %v; want refused: %s", p, err, tc.err)
				}
				return
			}
			if err != nil || p.cpus.String() != tc.cpus || p.standby != tc.standby {
				t.Fatalf("plan = %+v (cpus %s), %v; want cpus %s standby %v", p, p.cpus, err, tc.cpus, tc.standby)
			}
		})
	}
}

func TestOnCPUsMovesTasks(t *testing.T) {
	nc := loadExample(t, `cpus: "1"`, "cpus: \"1\"\n  standby_cpus: \"0\"")
	c, err := onCPUs(nc, configs.CPUList{0})
	if err != nil {
		t.Fatal(err)
	}
	if c.Partition.CPUs.String() != "0" || c.Partition.StandbyCPUs.String() != "1" || c.Tasks[0].CPU == nil || *c.Tasks[0].CPU != 0 {
		t.Fatalf("on cpu 0: cpus %s standby %s task cpu %v", c.Partition.CPUs, c.Partition.StandbyCPUs, c.Tasks[0].CPU)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("moved config does not validate: %v", err)
	}
	if nc.Partition.CPUs.String() != "1" || *nc.Tasks[0].CPU != 1 {
		t.Fatalf("the applied config changed: cpus %s task cpu %d", nc.Partition.CPUs, *nc.Tasks[0].CPU)
	}
}

func TestBlockChanges(t *testing.T) {
	old := loadExample(t)
	nc := loadExample(t)
	b := &nc.Tasks[0].Blocks
	*b = append(*b, configs.Block{Name: "extra", Type: "lag"})
	(*b)[0].Type = "other-type" // same name, another type: not carried
	first := old.Tasks[0].Blocks[0].Name
	carried, fresh, dropped := blockChanges(old, nc)
	if slices.Contains(carried, first) || !slices.Equal(fresh, []string{"extra", first}) && !slices.Equal(fresh, []string{first, "extra"}) || !slices.Equal(dropped, []string{first}) {
		t.Fatalf("carried %v fresh %v dropped %v", carried, fresh, dropped)
	}
	if len(carried) != len(old.Tasks[0].Blocks)-1 {
		t.Fatalf("carried %v, want every block but %s", carried, first)
	}
}

// fakePartition records which of the two partitions was started.
type fakePartition struct {
	name    string
	started *[]string
}

func (f fakePartition) Backend() string { return "process" }
func (f fakePartition) Start(context.Context) error {
	*f.started = append(*f.started, f.name)
	return nil
}
func (f fakePartition) Wait(ctx context.Context) (supervisor.Exit, error) {
	<-ctx.Done()
	return supervisor.Exit{}, ctx.Err()
}
func (f fakePartition) Stop(context.Context) error { return nil }
func (f fakePartition) Kill() error                { return nil }
func (f fakePartition) Info() supervisor.Info      { return supervisor.Info{RTWhy: f.name} }
func (f fakePartition) Console() []string          { return nil }

// A generation restarted after its switch starts ordinarily: the region it
// took over from is gone.
func TestStandbyPartitionRestartsOrdinarily(t *testing.T) {
	var started []string
	p := &standbyPartition{standby: fakePartition{"standby", &started}, normal: fakePartition{"normal", &started}}
	ctx := context.Background()
	p.Start(ctx)
	p.Stop(ctx)
	p.Start(ctx) // a restart before the switch: still on standby
	if p.Info().RTWhy != "standby" {
		t.Fatalf("info from %q, want the standby partition", p.Info().RTWhy)
	}
	p.switched.Store(true)
	p.Stop(ctx)
	p.Start(ctx)
	if !slices.Equal(started, []string{"standby", "standby", "normal"}) || p.Info().RTWhy != "normal" {
		t.Fatalf("started %v, info from %q; want standby, standby, normal", started, p.Info().RTWhy)
	}
}
