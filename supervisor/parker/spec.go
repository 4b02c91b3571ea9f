package parker

import (
	"fmt"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// FromConfig builds the Parker partition of one generation: the control
// program runs as PID 1 of a Parker secondary kernel named spec.Instance
// (/sys/fs/parker/<instance>). Its shared region is the first range the
// host's command line reserves with memmap=<size>$<addr> that is large
// enough and not held by the running generation (spec.Beside): a
// hand-over's second secondary needs a second such range. host reaches
// the kernel (zero: the real host).
func FromConfig(spec supervisor.Spec, host kexec.Host) (*Partition, error) {
	ko, cfg, err := kexec.FromSpec(spec, "parker", host)
	if err != nil {
		return nil, err
	}
	cfg.Metadata.Name = spec.Instance // the kernel entry /sys/fs/parker/<instance>
	size := uint64(cfg.Partition.SharedMemory)
	if size == 0 {
		size = uint64(configs.DefaultSharedMemory)
	}
	addr, err := kexec.Reserved(ko.Host.FS, size, kexec.HeldBy(spec.Beside), "the shared region")
	if err != nil {
		return nil, fmt.Errorf("parker: %w", err)
	}
	return New(Options{Config: cfg, SharedMemory: addr, Options: ko})
}

// Holds is the reserved range of the secondary's shared region.
func (p *Partition) Holds() []kexec.Range {
	l := p.SharedMemory()
	return []kexec.Range{{Base: l.Addr, Bytes: uint64(l.Size)}}
}
