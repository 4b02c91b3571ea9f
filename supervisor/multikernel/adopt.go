package multikernel

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// Record is what a later supervisor needs to adopt a running instance (a
// second kernel outlives the supervisor that spawned it): its plan and
// its overlay transaction.
type Record struct {
	Plan Plan   `json:"plan"`
	Tx   string `json:"tx"`
}

var _ supervisor.Adopter = (*Partition)(nil)

// Record is the running instance's Record, as JSON (supervisor.Adopter).
func (p *Partition) Record() (json.RawMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plan == nil || p.tx == "" {
		return nil, fmt.Errorf("multikernel: partition %w", supervisor.ErrNotStarted)
	}
	return json.Marshal(Record{Plan: *p.plan, Tx: p.tx})
}

func (p *Partition) probe() error {
	_, err := p.o.FS.ReadFile(p.path("device_tree"))
	return err
}

func flags(plan *Plan) uintptr { return kexec.Multikernel | kexec.MKID(plan.ID) }

// restore rebuilds the per-start state from r.
func (p *Partition) restore(r Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	plan := r.Plan
	p.plan, p.tx, p.info = &plan, r.Tx, p.startInfo()
}

// Adopt takes over the running instance rec describes (supervisor.Adopter):
// Wait follows its status, Stop halts it and removes it.
func (p *Partition) Adopt(rec json.RawMessage) error {
	var r Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return fmt.Errorf("multikernel: bad record: %w", err)
	}
	return p.life.Adopt(func() ([]supervisor.Step, error) {
		p.restore(r)
		if err := p.kern.Adopt(p.probe, flags(&r.Plan), r.Plan.Cmdline); err != nil {
			return nil, err
		}
		return p.Steps(), nil
	})
}

// Reclaim removes what an instance that no longer runs left: its loaded
// image and its overlay (supervisor.Adopter).
func (p *Partition) Reclaim(ctx context.Context, rec json.RawMessage) error {
	var r Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return fmt.Errorf("multikernel: bad record: %w", err)
	}
	err := p.life.Adopt(func() ([]supervisor.Step, error) {
		p.restore(r)
		if err := p.kern.Reclaimed(p.probe, flags(&r.Plan)); err != nil {
			return nil, err
		}
		return p.Steps(), nil
	})
	if err != nil {
		return err
	}
	return p.life.Stop(ctx)
}
