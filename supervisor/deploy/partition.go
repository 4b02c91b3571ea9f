package deploy

import (
	"context"
	"fmt"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/multikernel"
	"github.com/mkrt/mkrt/supervisor/parker"
	"github.com/mkrt/mkrt/supervisor/process"
	"github.com/mkrt/mkrt/supervisor/vm"
)

// newPartition builds the partition of one generation on the config's
// backend: each backend builds itself from the spec (FromConfig); the
// deployment adds only the host seams its options carry.
func newPartition(ctx context.Context, spec supervisor.Spec, o Options) (supervisor.Partition, error) {
	switch b := spec.Config.Partition.Backend; b {
	case configs.BackendProcess, "":
		return process.FromConfig(spec)
	case configs.BackendVM:
		return vm.FromConfig(ctx, spec)
	case configs.BackendMultikernel:
		return multikernel.FromConfig(spec, o.Kexec)
	case configs.BackendParker:
		return parker.FromConfig(spec, o.Kexec)
	case configs.BackendJailhouse:
		return jailhouse.FromConfig(spec, o.Kexec, o.Jailhouse)
	default:
		return nil, fmt.Errorf("deploy: unknown backend %q (process, vm, multikernel, parker or jailhouse)", b)
	}
}

// InNetwork runs fn in the network of the program started last.
func (p *standbyPartition) InNetwork(fn func() error) error {
	if n, ok := p.cur().(supervisor.Networked); ok {
		return n.InNetwork(fn)
	}
	return fn()
}

// Holds is the memory the program started last holds (a second kernel's),
// so the generation after it keeps clear of it.
func (p *standbyPartition) Holds() []kexec.Range { return kexec.HeldBy(p.cur()) }
