package parker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mkrt/mkrt/supervisor"
)

// Record is what a later supervisor needs to adopt a running secondary
// (it outlives the supervisor that started it): the loaded image's
// command line. Everything else follows from the config.
type Record struct {
	Cmdline string `json:"cmdline"`
}

var _ supervisor.Adopter = (*Partition)(nil)

// Record is the running secondary's Record, as JSON (supervisor.Adopter).
func (p *Partition) Record() (json.RawMessage, error) {
	c := p.kern.Cmdline()
	if c == "" {
		return nil, fmt.Errorf("parker: partition %w", supervisor.ErrNotStarted)
	}
	return json.Marshal(Record{Cmdline: c})
}

func (p *Partition) probe() error {
	_, err := p.o.FS.ReadDir(p.o.Root)
	return err
}

func (p *Partition) restore() {
	nics := make([]string, 0, len(p.o.Config.Partition.NICs))
	for _, n := range p.o.Config.Partition.NICs {
		nics = append(nics, n.PCI)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.info = supervisor.Info{Isolation: supervisor.Isolation{
		CPUs: p.o.Config.Partition.CPUs.String(), CPUSet: "parker (offlined)", NICs: nics,
	}}
}

// Adopt takes over the running secondary rec describes (supervisor.Adopter).
func (p *Partition) Adopt(rec json.RawMessage) error {
	var r Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return fmt.Errorf("parker: bad record: %w", err)
	}
	return p.life.Adopt(func() ([]supervisor.Step, error) {
		p.restore()
		if err := p.kern.Adopt(p.probe, 0, r.Cmdline); err != nil {
			return nil, err
		}
		return p.Steps(), nil
	})
}

// Reclaim removes what a secondary that no longer runs left: its loaded
// image and its kernfs entry (supervisor.Adopter).
func (p *Partition) Reclaim(ctx context.Context, rec json.RawMessage) error {
	err := p.life.Adopt(func() ([]supervisor.Step, error) {
		p.restore()
		if err := p.kern.Reclaimed(p.probe, 0); err != nil {
			return nil, err
		}
		return p.Steps(), nil
	})
	if err != nil {
		return err
	}
	return p.life.Stop(ctx)
}
