package multikernel

import (
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// FromConfig builds the multikernel partition of one generation: the
// control program runs as PID 1 of a second kernel spawned beside this
// one, as instance spec.Instance. Its shared region is the top of the
// instance's memory, mapped through /dev/mem (Locate); a hand-over's
// standby start runs as a second instance clear of the running one's
// memory (spec.Beside) and finds the running region through
// mkrt.take=phys:…. host reaches the kernel (zero: the real host).
func FromConfig(spec supervisor.Spec, host kexec.Host) (*Partition, error) {
	ko, cfg, err := kexec.FromSpec(spec, "multikernel", host)
	if err != nil {
		return nil, err
	}
	return New(Options{Config: cfg, Name: spec.Instance, Beside: kexec.HeldBy(spec.Beside), Options: ko})
}

// Holds is the memory the instance's plan gives it (nil before Locate).
func (p *Partition) Holds() []kexec.Range {
	if plan := p.Plan(); plan != nil {
		return []kexec.Range{{Base: plan.MemoryBase, Bytes: plan.MemoryBytes}}
	}
	return nil
}
