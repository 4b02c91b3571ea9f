package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// The partition outlives the supervisor (DESIGN.md §6): `mkrt run` keeps a
// record of the running generation in its state directory, and the next
// `mkrt run` of the same partition adopts it — attaches to its region
// without formatting it, watches its heartbeat, serves it — instead of
// starting a second one. A record whose program is gone is reclaimed:
// what it left on the host (cpuset, moved IRQs, NIC namespace, region) is
// undone before a normal start.

// recordVersion is the version of the record's format.
const recordVersion = 1

// record is what `mkrt run` keeps of the running generation.
type record struct {
	Version    int    `json:"version"`
	Name       string `json:"name"`
	Backend    string `json:"backend"`
	Generation int    `json:"generation"`
	// Config is the config the generation's executive runs, as written
	// out when it started (its hash is ConfigHash).
	Config     string `json:"config"`
	ConfigHash string `json:"config_hash"`
	// Region is the shared region's file ("" for physical memory).
	Region string `json:"region,omitempty"`
	// Partition is the backend's record (supervisor.Adopter).
	Partition json.RawMessage `json:"partition"`
	// Supervisor is the pid of the `mkrt run` that wrote the record.
	Supervisor int       `json:"supervisor"`
	Time       time.Time `json:"time"`
}

func recordPath(stateDir string) string { return filepath.Join(stateDir, "partition.json") }

// readRecord is the record in stateDir; nil when there is none.
func readRecord(stateDir string) (*record, error) {
	b, err := os.ReadFile(recordPath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deploy: partition record: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Version != recordVersion {
		return nil, fmt.Errorf("deploy: partition record %s is unreadable (version %d, %v): remove it after checking nothing of the partition runs", recordPath(stateDir), r.Version, err)
	}
	return &r, nil
}

// writeRecord saves g's record (after its partition came up); a backend
// whose program cannot outlive the supervisor has none.
func (g *generation) writeRecord() {
	a, ok := g.part.(supervisor.Adopter)
	if !ok {
		return
	}
	d := g.d
	rec, err := a.Record()
	if err != nil {
		d.log.Warn("partition record not written", "err", err)
		return
	}
	cfgFile := filepath.Join(d.o.StateDir, fmt.Sprintf("running-%d.yaml", g.n))
	text, err := g.cfg.Marshal()
	if err == nil {
		err = writeFileAtomic(cfgFile, text)
	}
	if err != nil {
		d.log.Warn("partition record not written", "err", err)
		return
	}
	h := g.cfg.Hash()
	r := record{Version: recordVersion, Name: d.name, Backend: g.part.Backend(), Generation: g.n, Config: cfgFile,
		ConfigHash: fmt.Sprintf("%x", h[:]), Region: g.regionPath, Partition: rec, Supervisor: os.Getpid(), Time: time.Now()}
	b, err := json.MarshalIndent(r, "", "  ")
	if err == nil {
		err = writeFileAtomic(recordPath(d.o.StateDir), b)
	}
	if err != nil {
		d.log.Warn("partition record not written", "err", err)
	}
}

// removeRecord forgets the record of generation n (it stopped cleanly).
func removeRecord(stateDir string, n int) {
	if r, _ := readRecord(stateDir); r != nil && r.Generation == n {
		os.Remove(recordPath(stateDir))
	}
	os.Remove(filepath.Join(stateDir, fmt.Sprintf("running-%d.yaml", n)))
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// found is a partition a previous supervisor left running, adopted.
type found struct {
	rec  *record
	part supervisor.Partition // adopted: its program runs
	// cfg is the config its executive runs; params are the parameter
	// changes the config being run asks for on top (applied live once
	// the partition is up).
	cfg    *configs.Config
	params []blocks.ParamChange
}

// resume looks for a partition a previous supervisor left in the state
// directory. A running one whose config is cfg (or differs only in block
// parameters) is adopted and returned; a structurally different one is
// refused with the way out; one whose program is gone is reclaimed (its
// host preparation and region undone) and nil returned.
func (d *deployment) resume(cfg *configs.Config) (*found, error) {
	rec, err := readRecord(d.o.StateDir)
	if err != nil || rec == nil {
		return nil, err
	}
	running, err := configs.Load(rec.Config)
	if err != nil {
		return nil, fmt.Errorf("deploy: the record of a running partition names config %s: %w", rec.Config, err)
	}
	g := &generation{d: d, n: rec.Generation, cfg: running, applied: running, regionPath: rec.Region}
	part, err := newPartition(d.ctx, g.spec(running, rec.Config, 0, d.log), d.o)
	if err != nil {
		return nil, err
	}
	a, ok := part.(supervisor.Adopter)
	if !ok {
		os.Remove(recordPath(d.o.StateDir))
		return nil, nil
	}
	err = a.Adopt(rec.Partition)
	if errors.Is(err, supervisor.ErrGone) {
		d.log.Warn("found what a killed supervisor left of the partition; reclaiming it", "generation", rec.Generation, "why", err)
		rctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer cancel()
		if err := a.Reclaim(rctx, rec.Partition); err != nil {
			d.log.Warn("reclaim incomplete", "err", err)
		}
		if rec.Region != "" {
			os.Remove(rec.Region)
		}
		removeRecord(d.o.StateDir, rec.Generation)
		d.log.Info("reclaimed the dead partition's cpuset, IRQ affinities, NIC namespace and region")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f := &found{rec: rec, part: part, cfg: running}
	if running.Hash() == cfg.Hash() {
		return f, nil
	}
	if f.params, err = blocks.ParamChanges(running, cfg); err != nil {
		// Leave it running, unwatched, as found.
		return nil, fmt.Errorf("deploy: %s already runs (generation %d) another config: %v; mkrt run %s adopts it as it runs (then mkrt apply the new config to hand it over), or mkrt stop %s stops it",
			d.name, rec.Generation, err, rec.Config, d.name)
	}
	return f, nil
}

// adopted says what was adopted once it is up, and applies the block
// parameters the config being run changes on top of it.
func (d *deployment) adopted(g *generation, f *found) {
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if err := g.awaitUp(ctx); err != nil {
		d.log.Warn("the adopted partition did not come up", "err", err)
		return
	}
	hb := g.reader.Heartbeat()
	d.log.Info(fmt.Sprintf("adopted %s (pid %d, cycle %d)", d.name, g.part.Info().PID, hb.Cycle), "generation", g.n, "left by", f.rec.Supervisor)
	d.applyParams(g, f.params)
}

// applyParams applies the block parameters the config being run changes
// on top of the adopted one, once the partition is up.
func (d *deployment) applyParams(g *generation, params []blocks.ParamChange) {
	if len(params) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	for _, p := range params {
		res, err := g.ch.Reader().Do(ctx, wire.Command{Kind: wire.SetParam, Tag: -1, Value: wire.Number(p.Value), Origin: wire.NewOrigin("cli:mkrt run"), Param: []byte(p.Name())})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			d.log.Warn("parameter not applied to the adopted partition", "param", p.Name(), "err", err)
			continue
		}
		setParam(g.applied, p.Block, p.Param, p.New)
		d.log.Info("parameter applied to the adopted partition", "param", p.Name(), "from", p.Old, "to", p.New, "cycle", res.Cycle)
	}
}

// Stop stops the partition name that runs without a supervisor (its `mkrt
// run` was killed): its program stops gracefully — the executive drives
// its outputs to their safe state — and what its start prepared on the
// host is undone, the region and the record removed. A partition whose
// program is gone is reclaimed. It refuses while a supervisor serves the
// partition (stop that one instead). o gives the state directory and the
// host seams as for Run; its ConfigPath is not used.
func Stop(ctx context.Context, name string, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(control.UserStateBase(), name)
	}
	if o.Socket == "" {
		o.Socket = control.SocketPath(name)
	}
	if _, err := control.NewClient(o.Socket).Status(ctx); err == nil {
		return fmt.Errorf("deploy: a supervisor serves %s (%s): stop it there (Ctrl-C, or systemctl stop mkrt@%s)", name, o.Socket, name)
	}
	rec, err := readRecord(o.StateDir)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("deploy: no record of a running partition %s in %s", name, o.StateDir)
	}
	running, err := configs.Load(rec.Config)
	if err != nil {
		return fmt.Errorf("deploy: the record names config %s: %w", rec.Config, err)
	}
	d := &deployment{o: o, name: name, log: log.With("partition", name), ctx: ctx}
	g := &generation{d: d, n: rec.Generation, cfg: running, applied: running, regionPath: rec.Region}
	part, err := newPartition(ctx, g.spec(running, rec.Config, 0, d.log), o)
	if err != nil {
		return err
	}
	a, ok := part.(supervisor.Adopter)
	if !ok {
		return fmt.Errorf("deploy: the %s backend's partitions do not outlive their supervisor", part.Backend())
	}
	switch err := a.Adopt(rec.Partition); {
	case errors.Is(err, supervisor.ErrGone):
		d.log.Info("the partition's program is gone; reclaiming what it left", "why", err)
		err = a.Reclaim(ctx, rec.Partition)
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		d.log.Info("stopping the partition", "pid", part.Info().PID, "generation", rec.Generation)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := part.Stop(sctx); err != nil {
			return err
		}
	}
	if rec.Region != "" {
		os.Remove(rec.Region)
	}
	removeRecord(o.StateDir, rec.Generation)
	return nil
}
