package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
)

// program is one run of the partition's program: its pid and the start
// time /proc gives it, which tells it from a later process that reuses
// the pid.
type program struct {
	pid   int
	start uint64 // /proc/<pid>/stat starttime (clock ticks after boot)
}

// Record is what a later supervisor needs to adopt a running process
// partition, or to undo its host preparation once the program is gone:
// the program's identity and each step's outcome. It is JSON.
type Record struct {
	PID int `json:"pid"`
	// Start is the program's start time in /proc/<pid>/stat (clock ticks
	// after boot) and BootID the kernel's boot id: together with the pid
	// they name one process.
	Start  uint64 `json:"start"`
	BootID string `json:"boot_id"`
	// Cgroup is the partition's cpuset, nil when it has none.
	Cgroup *CgroupRecord `json:"cgroup,omitempty"`
	// IRQs are the IRQs moved off the partition's CPUs, with their
	// affinity before.
	IRQs []IRQRecord `json:"irqs,omitempty"`
	// NetNS and NICs are the partition's network namespace and the links
	// moved into it, with their state before.
	NetNS string      `json:"netns,omitempty"`
	NICs  []NICRecord `json:"nics,omitempty"`
	// Isolation is what the host preparation achieved (for status).
	Isolation supervisor.Isolation `json:"isolation"`
}

// CgroupRecord is a partition's cpuset cgroup.
type CgroupRecord struct {
	V2     bool   `json:"v2"`
	Parent string `json:"parent"`
	Dir    string `json:"dir"`
	Mode   string `json:"mode"`
}

// IRQRecord is one moved IRQ and its affinity list before.
type IRQRecord struct {
	IRQ      string `json:"irq"`
	Affinity string `json:"affinity"`
}

// NICRecord is a link moved into the partition's namespace and its state
// before.
type NICRecord struct {
	Name  string    `json:"name"`
	State LinkState `json:"state"`
}

var _ supervisor.Adopter = (*Partition)(nil)

// Record is the partition's Record, as JSON (supervisor.Adopter).
func (p *Partition) Record() (json.RawMessage, error) {
	r, err := p.Recorded()
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// Adopt is AdoptRecord of a JSON Record (supervisor.Adopter).
func (p *Partition) Adopt(rec json.RawMessage) error {
	var r Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return fmt.Errorf("process: bad record: %w", err)
	}
	return p.AdoptRecord(r)
}

// Reclaim is ReclaimRecord of a JSON Record (supervisor.Adopter).
func (p *Partition) Reclaim(ctx context.Context, rec json.RawMessage) error {
	var r Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return fmt.Errorf("process: bad record: %w", err)
	}
	return p.ReclaimRecord(ctx, r)
}

// Recorded is the partition's record while its program runs.
func (p *Partition) Recorded() (Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil || p.info.PID == 0 {
		return Record{}, fmt.Errorf("process: partition %s: no program runs", p.cfg.Name)
	}
	r := Record{PID: p.run.pid, Start: p.run.start, BootID: supervisor.BootID(p.cfg.FS.ReadFile, p.cfg.ProcRoot), NetNS: p.info.NetNS, Isolation: p.info.Clone().Isolation}
	if cg := p.cg; cg != nil {
		r.Cgroup = &CgroupRecord{V2: cg.v2, Parent: cg.parent, Dir: cg.dir, Mode: cg.mode}
	}
	for _, m := range p.irqs.moved {
		r.IRQs = append(r.IRQs, IRQRecord{IRQ: m.irq, Affinity: m.orig})
	}
	for _, n := range p.nics {
		r.NICs = append(r.NICs, NICRecord{Name: n.name, State: n.st})
	}
	return r, nil
}

// Alive reports whether the program r records still runs: the same pid,
// the same start time, in the same boot. When it does not, the error
// (wrapping supervisor.ErrGone) says why.
func (p *Partition) Alive(r Record) error {
	if r.PID <= 0 {
		return fmt.Errorf("%w: no pid recorded", supervisor.ErrGone)
	}
	if b := supervisor.BootID(p.cfg.FS.ReadFile, p.cfg.ProcRoot); r.BootID != "" && b != "" && b != r.BootID {
		return fmt.Errorf("%w: pid %d ran in an earlier boot", supervisor.ErrGone, r.PID)
	}
	start, err := supervisor.ProcessStart(p.cfg.ProcRoot, r.PID)
	if err != nil {
		return fmt.Errorf("%w: pid %d: %v", supervisor.ErrGone, r.PID, err)
	}
	if start != r.Start {
		return fmt.Errorf("%w: pid %d is another process now (started at %d, recorded %d)", supervisor.ErrGone, r.PID, start, r.Start)
	}
	return nil
}

// AdoptRecord takes over the running program r records, which an earlier
// supervisor started and left behind: the partition is started as far as
// Stop and Kill are concerned (Stop ends the program and undoes the
// recorded host preparation), Wait returns when the program ends (its exit
// status is not known to a supervisor that is not its parent), and Console
// follows its console file. It fails with ErrGone when the program no
// longer runs (Reclaim then undoes what it left).
func (p *Partition) AdoptRecord(r Record) error {
	if err := p.Alive(r); err != nil {
		return err
	}
	err := p.life.Adopt(func() ([]supervisor.Step, error) {
		p.restore(r)
		return p.Steps(), nil
	})
	if err != nil {
		return err
	}
	ended, err := p.watch(r.PID)
	if err != nil {
		return errors.Join(err, p.life.Stop(context.Background()))
	}
	if p.cfg.ConsoleFile != "" {
		from := int64(0)
		if fi, err := os.Stat(p.cfg.ConsoleFile); err == nil {
			from = fi.Size()
		}
		go p.follow(ended, from)
	}
	p.log.Info("partition program adopted", "pid", r.PID, "netns", r.NetNS)
	return nil
}

// ReclaimRecord undoes the host preparation r records once its program is
// gone (a supervisor that was killed left the cpuset, the moved IRQs and
// the NICs' namespace behind). It refuses while the program runs.
func (p *Partition) ReclaimRecord(ctx context.Context, r Record) error {
	if err := p.Alive(r); err == nil {
		return fmt.Errorf("process: partition %s: pid %d still runs; stop it or adopt it", p.cfg.Name, r.PID)
	}
	err := p.life.Adopt(func() ([]supervisor.Step, error) {
		p.restore(r)
		return p.Steps(), nil
	})
	if err != nil {
		return err
	}
	gone := supervisor.NewEnding()
	gone.End(supervisor.Exit{Code: -1, Signal: "gone before this supervisor started"})
	p.life.Running(gone)
	return p.life.Stop(ctx)
}

// restore rebuilds the per-start state from r. Called under the
// lifecycle's lock.
func (p *Partition) restore(r Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run = &program{pid: r.PID, start: r.Start}
	p.info = supervisor.Info{PID: r.PID, RT: p.privileged(), Isolation: r.Isolation}
	p.info = p.info.Clone()
	if p.info.CPUs == "" {
		p.info.CPUs = configs.CPUList(p.cfg.CPUs).String()
	}
	p.cg = nil
	if c := r.Cgroup; c != nil {
		p.cg = &cpuset{fs: p.cfg.FS, v2: c.V2, parent: c.Parent, dir: c.Dir, mode: c.Mode}
	}
	p.irqs = irqState{}
	for _, m := range r.IRQs {
		p.irqs.moved = append(p.irqs.moved, irqMove{irq: m.IRQ, orig: m.Affinity})
	}
	p.nics = nil
	for _, n := range r.NICs {
		p.nics = append(p.nics, movedNIC{name: n.Name, st: n.State})
	}
	if len(p.nics) > 0 && p.cfg.Net == nil {
		if n, err := NewLinuxNet(); err == nil {
			p.cfg.Net = n
		}
	}
}

// watch follows an adopted program, which is not this process's child:
// its run ends when the program ends.
func (p *Partition) watch(pid int) (*supervisor.Ending, error) {
	e, err := supervisor.WatchEnding(pid, func() supervisor.Exit {
		p.mu.Lock()
		p.info.PID = 0
		p.mu.Unlock()
		x := supervisor.Exit{Code: -1, Signal: "ended (adopted: its exit status is known only to its parent)", Time: p.cfg.Clock.Now()}
		p.log.Info("partition program ended", "how", x.String())
		return x
	})
	if err != nil {
		return nil, fmt.Errorf("process: watch adopted pid %d: %w", pid, err)
	}
	p.life.Running(e)
	return e, nil
}

// follow copies the console file into the console ring until ended.
func (p *Partition) follow(ended *supervisor.Ending, from int64) {
	if err := supervisor.FollowFile(ended, p.cfg.ConsoleFile, from, p.console); err != nil {
		p.log.Warn("console file unreadable", "err", err)
	}
}
