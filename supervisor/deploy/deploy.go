// Package deploy runs one control config as a live deployment on the
// general kernel — what `mkrt run` does: it creates and formats the shared
// region (a /dev/shm file, or for a second kernel the physical memory its
// plan reserves, through /dev/mem), starts the partition on its backend
// (process, vm, multikernel, parker or jailhouse) under the supervisor's
// heartbeat watchdog and restart policy, serves the region to
// SCADA through the bridge (MQTT Sparkplug B and JSON, Modbus TCP,
// metrics), keeps retained tags on disk, and answers `mkrt status`, `tags`,
// `set` and `apply` on a unix socket. Stopping it (ctx) stops the
// partition gracefully and releases every resource it took.
//
// It runs anywhere as the process backend; isolation (cpusets, IRQ
// affinity, NIC namespaces) and SCHED_FIFO need root, and without it the
// deployment says what it could not do. The vm backend needs QEMU and a
// PREEMPT_RT kernel image; the second-kernel backends need root and a host
// kernel (or hypervisor) with their patch set, and have run only against
// the fakes of their interfaces (Options.Kexec, Options.Jailhouse).
//
// A structural `mkrt apply` is a hand-over (handover.go; the switch itself in switch.go): a new generation
// of the partition starts on standby beside the running one — a process,
// a second guest, a second multikernel instance or Parker secondary — and
// takes the outputs and the controller state at a cycle boundary.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/retain"
)

// Options configure a deployment.
type Options struct {
	// ConfigPath is the control config.
	ConfigPath string
	// Backend overrides partition.backend ("" keeps it).
	Backend configs.Backend
	// StateDir keeps retained values, the store-and-forward buffer and the
	// audit log; default /var/lib/mkrt/<name> as root, else
	// $XDG_STATE_HOME/mkrt/<name>.
	StateDir string
	// Socket is the control socket; default control.SocketPath(name):
	// /run/mkrt/<name>.sock as root, else $XDG_RUNTIME_DIR/mkrt/<name>.sock.
	Socket string
	// Executable is the mkrt binary the process backend runs as
	// `mkrt executive`; default os.Executable().
	Executable string
	// Kernel and Init override the application kernel and mkrt-init of
	// the vm and second-kernel backends.
	Kernel, Init string
	Log          *slog.Logger
	// Ready is called once, after the partition's first heartbeat.
	Ready func(Ready)
	// HandOverTimeout bounds the switch of a hand-over (mkrt apply of a
	// structural change) once the new control program is on standby;
	// default 10s. When it passes, the running partition keeps the outputs.
	HandOverTimeout time.Duration

	// Kexec is how the multikernel and parker backends reach the kernel
	// (kernfs, /proc, system calls, /dev/mem); zero is the real host. Tests
	// put the fakes of multikerneltest and parkertest in.
	Kexec kexec.Host
	// Jailhouse is how the jailhouse backend reaches the hypervisor; zero
	// is the real host (tests put jailhousetest's device in).
	Jailhouse jailhouse.Host
}

// Ready describes a deployment that is up.
type Ready struct {
	Config    *configs.Config
	Socket    string
	Region    string
	StateDir  string
	Bridge    bridge.Status
	Partition supervisor.Status
}

// Run runs the deployment until ctx ends (a clean stop returns nil) or the
// partition gives up (crash loop, or a config the executive refuses).
func Run(ctx context.Context, o Options) (err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := configs.Load(o.ConfigPath)
	if err != nil {
		return err
	}
	if o.Backend != "" {
		cfg.Partition.Backend = o.Backend
	}
	tab, err := cfg.TagTable()
	if err != nil {
		return err
	}
	if _, err := blocks.Compile(cfg, tab); err != nil {
		return err
	}
	name := cfg.Metadata.Name
	log = log.With("partition", name)
	if o.StateDir == "" {
		o.StateDir = filepath.Join(control.UserStateBase(), name)
	}
	if o.Socket == "" {
		o.Socket = control.SocketPath(name)
	}
	if err := privateDir(o.StateDir, log); err != nil {
		return err
	}

	d := &deployment{o: o, name: name, log: log, store: retain.New(filepath.Join(o.StateDir, "retain.json"), log),
		events: make(chan event, 4), quit: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.ctx = ctx
	ready := func(g *generation) {
		if o.Ready != nil {
			go func() {
				g.ch.AwaitRT(time.Second)
				o.Ready(Ready{Config: cfg, Socket: o.Socket, Region: g.regionName(), StateDir: o.StateDir, Bridge: g.bridgeStatus(), Partition: withRT(g.ch, g.sup.Status())})
			}()
		}
	}
	found, err := d.resume(cfg)
	if err != nil {
		return err
	}
	n, gcfg, adopted := 1, cfg, supervisor.Partition(nil)
	if found != nil {
		n, gcfg, adopted = found.rec.Generation, found.cfg, found.part
	}
	g, err := d.newGeneration(n, gcfg, gcfg, "", "", ready, adopted)
	if err != nil {
		return err
	}
	d.cur, d.n = g, n
	g.start()
	if found != nil {
		go d.adopted(g, found)
	}
	if err := g.serve(); err != nil {
		g.stop()
		return err
	}
	ctrl := &controller{d: d}
	srv, err := control.Listen(o.Socket, ctrl, control.Options{Log: log, Refuser: ctrl})
	if err != nil {
		d.stopBridge()
		g.stop()
		return err
	}
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		if err := srv.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.report(event{what: "control socket", err: err})
		}
	}()
	err = d.wait(ctx)
	cancel()
	<-srvDone
	// A hand-over in progress ends with ctx; then the bridge and whichever
	// generation serves stop.
	d.applyMu.Lock()
	d.stopBridge()
	d.current().stop()
	d.applyMu.Unlock()
	close(d.quit)
	return err
}

// wait returns when ctx ends (nil) or the serving generation's supervisor
// gives up or its bridge or the control socket fails. Generations a
// hand-over stopped or abandoned end quietly.
func (d *deployment) wait(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-d.events:
			if ev.g != nil && ev.g != d.current() {
				continue
			}
			if ev.err == nil {
				return fmt.Errorf("deploy: %s ended", ev.what)
			}
			if ev.what == "partition" {
				return ev.err // the supervisor's own error (crash loop, do not restart)
			}
			return fmt.Errorf("%s: %w", ev.what, ev.err)
		}
	}
}

// withRT takes the real-time outcome from the executive's heartbeat: only
// the executive knows what it got (in a VM or a second kernel the backend
// cannot see it).
func withRT(ch *plant.Region, s supervisor.Status) supervisor.Status {
	switch mode, why := ch.RT(); mode {
	case wire.RTFull:
		s.RT, s.RTWhy = true, ""
	case wire.RTDegraded:
		s.RT, s.RTWhy = false, why
	}
	return s
}

// taskStats are the tasks' counters and latency for mkrt status.
type taskStats struct{ ch *plant.Region }

func (t taskStats) TaskStats() []supervisor.TaskStats {
	h := t.ch.Health()
	out := make([]supervisor.TaskStats, len(h.Tasks))
	for i, t := range h.Tasks {
		out[i] = supervisor.TaskStats{Name: t.Name, Period: t.Period, Cycles: t.Cycles, Overruns: t.Overruns, P50: t.Wakeup.P50, P99: t.Wakeup.P99, Max: t.Wakeup.Max}
	}
	return out
}

type bridgeLinks struct{ b *bridge.Bridge }

// Links reports the bridge's connections for mkrt status.
func (l bridgeLinks) Links() []supervisor.Link {
	s := l.b.Status()
	var out []supervisor.Link
	if s.Broker != "" {
		out = append(out, supervisor.Link{Name: "embedded broker", Peer: s.Broker, Connected: true, Detail: fmt.Sprintf("%d clients", s.BrokerClients)})
	}
	if s.MQTT != "" {
		d := fmt.Sprintf("published %d, buffered %d, dropped %d", s.Published, s.Buffered, s.Dropped)
		out = append(out, supervisor.Link{Name: "mqtt", Peer: s.MQTT, Connected: s.Sparkplug != nil && s.Sparkplug.Connected || s.JSONConnected, Detail: d})
	}
	if s.Modbus != "" {
		out = append(out, supervisor.Link{Name: "modbus server", Peer: s.Modbus, Connected: s.ModbusListening})
	}
	if s.Metrics != "" {
		out = append(out, supervisor.Link{Name: "metrics", Peer: "http://" + s.Metrics + "/metrics", Connected: true})
	}
	return out
}

func startTimeout(cfg *configs.Config) time.Duration {
	if cfg.Partition.Backend == configs.BackendVM {
		return 3 * time.Minute // a kernel boot, under TCG on hosts without KVM
	}
	return 20 * time.Second
}

// privateDir makes the state directory (retained values, the audit log,
// each generation's config with its credentials) or narrows an existing
// one to 0750: nobody but the owner writes it, and others cannot list it.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("deploy: state directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("deploy: state directory: %w", err)
	}
	if m := st.Mode().Perm(); m&0o027 != 0 {
		if err := os.Chmod(dir, m&^0o027); err != nil {
			return fmt.Errorf("deploy: state directory %s is mode %#o (others may read or write it): %w; chmod o-rwx,g-w it", dir, m, err)
		}
		log.Warn("deploy: state directory narrowed: it holds credentials and the audit log", "dir", dir, "was", fmt.Sprintf("%#o", m), "now", fmt.Sprintf("%#o", m&^0o027))
	}
	return nil
}

func pow2(n int64) int64 {
	p := int64(4096)
	for p < n {
		p <<= 1
	}
	return p
}
