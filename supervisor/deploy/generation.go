package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/retain"
)

// deployment is what Run manages: the generation serving now (region,
// partition under its supervisor, retain saver) and, during a hand-over,
// the one replacing it, and the bridge, which outlives generations.
type deployment struct {
	o     Options // resolved: StateDir and Socket set
	name  string
	log   *slog.Logger
	store *retain.Store
	// ctx is Run's: it ends every generation.
	ctx context.Context
	// events carries a generation's supervisor or serving ending by itself.
	events chan event
	// quit closes when Run stops listening to events.
	quit chan struct{}

	// applyMu serialises applies, and Run's final clean-up with them.
	applyMu sync.Mutex

	mu   sync.Mutex
	cur  *generation
	n    int                  // generations made so far
	last *supervisor.HandOver // the last hand-over, nil before one
	// br serves the current generation to SCADA (nil before serve);
	// stopBr and brDone end and await its Run.
	br     *bridge.Bridge
	stopBr context.CancelFunc
	brDone chan struct{}
}

// event is a generation's partition or serving that ended by itself.
type event struct {
	g    *generation
	what string
	err  error
}

func (d *deployment) report(ev event) {
	select {
	case d.events <- ev:
	case <-d.quit:
	}
}

// current is the generation serving now.
func (d *deployment) current() *generation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// Links reports the bridge's connections for mkrt status.
func (d *deployment) Links() []supervisor.Link {
	d.mu.Lock()
	br := d.br
	d.mu.Unlock()
	if br == nil {
		return nil
	}
	return bridgeLinks{br}.Links()
}

// generation is one incarnation of the partition: the config its executive
// runs, its shared region, the partition under its supervisor and, while
// it is the generation serving, the retain saver on its channel (and the
// deployment's bridge serving it). The first is what mkrt run starts; each
// hand-over makes the next.
type generation struct {
	d *deployment
	n int
	// cfg is the config as the executive loads it; applied is the config
	// as the engineer wrote it (the two differ in the CPUs of a generation
	// on the standby CPUs), with the parameters applied since.
	cfg, applied *configs.Config
	cfgFile      string       // written for this generation; "" for the first
	regionPath   string       // the region's file ("" for physical memory)
	loc          shm.Location // where the region is
	region       *shm.Region
	reader       *shm.Reader
	ch           *plant.Region
	part         supervisor.Partition
	standby      *standbyPartition // nil for a normal start
	sup          *supervisor.Supervisor
	up           chan struct{} // closed at the partition's first heartbeat
	upOnce       sync.Once

	stopSup context.CancelFunc
	supDone chan struct{}

	mu        sync.Mutex
	stopServe context.CancelFunc
	serveDone chan struct{}
}

// regionPath is the shared region of generation n: /dev/shm/mkrt-<name>
// for the first, /dev/shm/mkrt-<name>-<n> after.
func regionPath(name string, n int) string {
	if n == 1 {
		return "/dev/shm/mkrt-" + name
	}
	return fmt.Sprintf("/dev/shm/mkrt-%s-%d", name, n)
}

// newGeneration creates and formats generation n's region and builds its
// partition and supervisor; nothing runs yet. takeFrom is the region of
// the generation to take over from ("" for a normal start). adopted, when
// set, is the generation's partition already running (a previous
// supervisor started it; see resume): its region is attached as it is,
// and the supervisor watches it without a start. On error nothing is left
// behind.
func (d *deployment) newGeneration(n int, cfg, applied *configs.Config, cfgFile, takeFrom string, ready func(*generation), adopted supervisor.Partition) (g *generation, err error) {
	tab, err := cfg.TagTable()
	if err != nil {
		return nil, err
	}
	g = &generation{d: d, n: n, cfg: cfg, applied: applied, cfgFile: cfgFile, regionPath: regionPath(d.name, n), up: make(chan struct{})}
	log := d.log
	if n > 1 {
		log = log.With("generation", n)
	}
	// The region lives as long as the generation: it survives partition
	// restarts, so the bridge keeps the last image while the partition is down.
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		return nil, err
	}
	size := pow2(layout.Size()) // an ivshmem BAR is a power of two

	spec := g.spec(cfg, cfgFile, size, log)
	if takeFrom != "" {
		spec.Beside = d.current().part // keep clear of what it holds
	}
	if g.part = adopted; g.part == nil {
		if g.part, err = newPartition(d.ctx, spec, d.o); err != nil {
			return nil, err
		}
	}
	g.loc = shm.File(g.regionPath, size, true)
	if l, ok := g.part.(supervisor.Locator); ok {
		// A second kernel's region is physical memory its plan reserves.
		if g.loc, err = l.Locate(); err != nil {
			return nil, err
		}
		g.regionPath = ""
	}
	if takeFrom != "" {
		spec.TakeFrom = takeFrom
		standby, err := newPartition(d.ctx, spec, d.o)
		if err != nil {
			return nil, err
		}
		if l, ok := standby.(supervisor.Locator); ok {
			if loc, err := l.Locate(); err != nil || loc != g.loc {
				return nil, fmt.Errorf("deploy: generation %d: the standby start would place the shared region at %v, not %v (%v)", n, loc, g.loc, err)
			}
		}
		g.standby = &standbyPartition{standby: standby, normal: g.part}
		g.part = g.standby
	}
	if g.region, err = shm.Open(g.loc); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if adopted != nil {
		// The running executive owns the region: attach as it is.
	} else if err := shm.CheckNoWriter(d.ctx, g.region, 10*period(cfg)); err != nil {
		name := g.regionName()
		g.regionPath = "" // not ours to remove
		return nil, fmt.Errorf("deploy: a control program still runs on %s but no mkrt run records it (its supervisor died before it could): stop it first (the pid is in the error): %w", name, err)
	} else if err := shm.Format(g.region, layout); err != nil {
		return nil, err
	}
	if takeFrom == "" && adopted == nil {
		if err := retain.Seed(d.ctx, g.region, layout, cfg, d.store, log); err != nil {
			log.Warn("retained values not seeded into the shared region", "err", err)
		}
	}
	if g.reader, err = shm.AttachReader(g.region, layout, shm.ReaderOptions{}); err != nil {
		return nil, err
	}
	g.ch = plant.NewRegion(g.reader)
	period, missed := supervisor.HeartbeatFromConfig(cfg)
	g.sup, err = supervisor.New(supervisor.Options{
		Name: d.name, Partition: g.part, Heartbeat: g.ch, Period: period, Missed: missed,
		StartTimeout: startTimeout(cfg), ExitOnGiveUp: true, Adopted: adopted != nil, Started: g.writeRecord, SafeState: g.safeState,
		Tasks: taskStats{g.ch}, Links: d, Log: log.With("component", "supervisor"),
		Listeners: []supervisor.Listener{supervisor.ListenerFuncs{
			Up: func(string) {
				g.ch.SetUp(true, "")
				g.upOnce.Do(func() {
					close(g.up)
					if ready != nil {
						ready(g)
					}
				})
			},
			Down: func(_ string, f supervisor.Fault) {
				g.ch.SetUp(false, f.Reason)
				removeRecord(d.o.StateDir, g.n)
			},
		}},
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// spec is what the generation asks of its backend for a normal start: the
// config and its file (the user's, or the generation's own), its instance
// name (metadata.name for the first generation; later ones their own
// cgroup, guest or instance, since the one before still holds its CPUs
// until it stops) and its region.
func (g *generation) spec(cfg *configs.Config, cfgFile string, size int64, log *slog.Logger) supervisor.Spec {
	o := g.d.o
	s := supervisor.Spec{Config: cfg, ConfigPath: o.ConfigPath, Instance: g.d.name, Region: g.regionPath, RegionSize: size,
		StateDir: o.StateDir, Kernel: o.Kernel, Init: o.Init, Executable: o.Executable, Halt: g.halt, Log: log}
	if cfgFile != "" {
		s.ConfigPath = cfgFile
	}
	if g.n > 1 {
		s.Instance = fmt.Sprintf("%s-%d", g.d.name, g.n)
	}
	return s
}

// start runs the generation's supervisor (which starts the partition)
// until stopPartition or the deployment's end.
func (g *generation) start() {
	ctx, cancel := context.WithCancel(g.d.ctx)
	g.stopSup, g.supDone = cancel, make(chan struct{})
	go func() {
		defer close(g.supDone)
		err := g.sup.Run(ctx)
		if ctx.Err() == nil || err != nil {
			g.d.report(event{g: g, what: "partition", err: err})
		}
	}()
}

// awaitUp waits for the partition's first heartbeat, bounded by ctx and
// the start timeout; it fails at once when the supervisor gives up.
func (g *generation) awaitUp(ctx context.Context) error {
	t := time.NewTimer(startTimeout(g.cfg) + 5*time.Second)
	defer t.Stop()
	select {
	case <-g.up:
		return nil
	case <-g.supDone:
		return fmt.Errorf("deploy: generation %d: the partition ended before its first heartbeat (%s)", g.n, faultOf(g.sup.Status()))
	case <-t.C:
		return fmt.Errorf("deploy: generation %d: no heartbeat (%s)", g.n, faultOf(g.sup.Status()))
	case <-ctx.Done():
		return fmt.Errorf("deploy: generation %d: waiting for its first heartbeat: %w", g.n, ctx.Err())
	}
}

func faultOf(st supervisor.Status) string {
	if st.LastFault != nil {
		return st.State.String() + ": " + st.LastFault.Reason
	}
	return st.State.String()
}

// serve serves the generation's channel to SCADA through the deployment's
// bridge (serveBridge) and starts the retain saver on it.
func (g *generation) serve() error {
	d := g.d
	if err := d.serveBridge(g); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(d.ctx)
	done := make(chan struct{})
	g.mu.Lock()
	g.stopServe, g.serveDone = cancel, done
	g.mu.Unlock()
	go func() {
		defer close(done)
		if err := retain.Keep(ctx, g.ch.Tags(), g.ch.Image, d.store, d.log); err != nil && !errors.Is(err, context.Canceled) {
			d.report(event{g: g, what: "retain", err: err})
		}
	}()
	return nil
}

// bridgeSwitchTimeout bounds a bridge's switch to the next generation,
// writes to the old one still in flight included.
const bridgeSwitchTimeout = 15 * time.Second

// serveBridge serves g's channel to SCADA. The first generation served
// starts the bridge; at a hand-over the running bridge switches to the
// next generation, so SCADA keeps its broker sessions and sees no NDEATH,
// only the Sparkplug rebirth a change of the metrics requires. A change the
// bridge cannot take over live (bridge.ErrNotSwitchable names it: a listen
// address, credentials, the Sparkplug ids, ...) or a failed switch
// restarts the bridge on g instead, which SCADA sees as a disconnect.
func (d *deployment) serveBridge(g *generation) error {
	d.mu.Lock()
	br := d.br
	d.mu.Unlock()
	if br != nil {
		ctx, cancel := context.WithTimeout(d.ctx, bridgeSwitchTimeout)
		err := br.Switch(ctx, g.cfg, g.ch)
		cancel()
		if err == nil {
			return nil
		}
		d.log.Warn("the bridge cannot switch to the new generation: restarting it, SCADA clients will reconnect", "generation", g.n, "err", err)
		d.stopBridge()
	}
	br, err := bridge.New(g.cfg, g.ch, bridge.Options{Log: d.log.With("component", "bridge"), StateDir: d.o.StateDir, AuditPath: filepath.Join(d.o.StateDir, "audit.jsonl"),
		Partition: func() any {
			if d.current() == nil {
				return nil
			}
			return (&controller{d: d}).Status()
		}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(d.ctx)
	done := make(chan struct{})
	d.mu.Lock()
	d.br, d.stopBr, d.brDone = br, cancel, done
	d.mu.Unlock()
	go func() {
		defer close(done)
		if err := br.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.report(event{what: "bridge", err: err})
		}
	}()
	return nil
}

// stopBridge stops the bridge (Sparkplug NDEATH, the embedded broker and
// the listeners closed) and waits for it. It must come before the region
// it serves is closed.
func (d *deployment) stopBridge() {
	d.mu.Lock()
	stop, done := d.stopBr, d.brDone
	d.br, d.stopBr, d.brDone = nil, nil, nil
	d.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
}

// bridgeStatus is the bridge's status (zero before serve).
func (g *generation) bridgeStatus() bridge.Status {
	g.d.mu.Lock()
	br := g.d.br
	g.d.mu.Unlock()
	if br == nil {
		return bridge.Status{}
	}
	return br.Status()
}

// stopServing stops the retain saver (a last save) and waits for it; the
// bridge serves on (stopBridge).
func (g *generation) stopServing() {
	g.mu.Lock()
	stop, done := g.stopServe, g.serveDone
	g.stopServe = nil
	g.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
}

// regionName is the region's file, or where in physical memory it is.
func (g *generation) regionName() string {
	if g.regionPath != "" {
		return g.regionPath
	}
	return g.loc.String()
}

// takeFromArg names the generation's region to the one taking over from
// it: the file, or phys:<addr>,<size> of physical memory.
func (g *generation) takeFromArg() string {
	if g.loc.Kind == shm.KindPhys {
		return fmt.Sprintf("phys:%#x,%#x", g.loc.Addr, g.loc.Size)
	}
	return g.regionPath
}

// halt asks the generation's executive to stop and drive its outputs to
// their safe values (a guest or second kernel then powers off).
func (g *generation) halt(context.Context) error {
	if g.ch == nil {
		return errors.New("deploy: no channel to the partition")
	}
	_, err := g.ch.Reader().Submit(wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("supervisor")})
	return err
}

// stopPartition stops the supervisor, which stops the partition
// gracefully (bounded by its stop timeout), and waits for it.
func (g *generation) stopPartition() {
	if g.stopSup == nil {
		return
	}
	g.stopSup()
	<-g.supDone
}

// close unmaps and removes the region and the generation's config file.
func (g *generation) close() {
	if g.region != nil {
		g.region.Close()
		if g.regionPath != "" {
			os.Remove(g.regionPath)
		}
	}
	if g.cfgFile != "" {
		os.Remove(g.cfgFile)
	}
}

// stop ends everything of the generation, in reverse order of start.
func (g *generation) stop() {
	g.stopServing()
	g.stopPartition()
	g.close()
}

// period is the heartbeat period of cfg's executive.
func period(cfg *configs.Config) time.Duration {
	p, _ := supervisor.HeartbeatFromConfig(cfg)
	return p
}

// safeState drives the config's watchdog.safe_state outputs to their safe
// values on the field devices, from this side, once the partition's
// program is gone: through the same driver code the executive uses
// (io/modbus), inside the partition's network when it has one of its own.
func (g *generation) safeState(ctx context.Context, p supervisor.Partition) error {
	if len(g.cfg.Watchdog.SafeState) == 0 {
		return nil
	}
	log := g.d.log.With("component", "safe-state")
	drive := func() error {
		res, err := modbus.DriveSafe(ctx, g.cfg, modbus.SafeOptions{Logger: log})
		for _, r := range res {
			log.Info("safe state driven", "device", r.Device, "outputs", len(r.Outputs), "took", r.Elapsed, "err", r.Err)
		}
		return err
	}
	var err error
	if n, ok := p.(supervisor.Networked); ok {
		err = n.InNetwork(drive)
	} else {
		err = drive()
	}
	if err == nil {
		// SCADA learns who holds the outputs (Executive/Fault).
		_, why := g.ch.Up()
		g.ch.SetUp(false, why+"; outputs held at their safe values by the supervisor")
	}
	return err
}
