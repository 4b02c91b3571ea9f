// Package deploy runs one control config as a live deployment on the
// general kernel — what `mkrt run` does: it creates and formats the shared
// region, starts the partition on its backend (process or vm) under the
// supervisor's heartbeat watchdog and restart policy, serves the region to
// SCADA through the bridge (MQTT Sparkplug B and JSON, Modbus TCP,
// metrics), keeps retained tags on disk, and answers `mkrt status`, `tags`,
// `set` and `apply` on a unix socket. Stopping it (ctx) stops the
// partition gracefully and releases every resource it took.
//
// It runs anywhere as the process backend; isolation (cpusets, IRQ
// affinity, NIC namespaces) and SCHED_FIFO need root, and without it the
// deployment says what it could not do. The vm backend needs QEMU and a
// PREEMPT_RT kernel image.
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
	"github.com/mkrt/mkrt/bridge/shm"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/rtkernel/tag"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
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
	// Socket is the control socket; default /run/mkrt/<name>.sock as root,
	// else $XDG_RUNTIME_DIR/mkrt/<name>.sock.
	Socket string
	// Executable is the mkrt binary the process backend runs as
	// `mkrt executive`; default os.Executable().
	Executable string
	// Kernel and Init override the vm backend's kernel and mkrt-init.
	Kernel, Init string
	Log          *slog.Logger
	// Ready is called once, after the partition's first heartbeat.
	Ready func(Ready)
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
	tab, err := tag.NewTable(cfg)
	if err != nil {
		return err
	}
	if _, err := blocks.Compile(cfg, tab); err != nil {
		return err
	}
	name := cfg.Metadata.Name
	log = log.With("partition", name)
	if o.StateDir == "" {
		o.StateDir = defaultDir("/var/lib/mkrt", os.Getenv("XDG_STATE_HOME"), ".local/state", name)
	}
	if o.Socket == "" {
		o.Socket = filepath.Join(defaultDir("/run/mkrt", os.Getenv("XDG_RUNTIME_DIR"), ".cache", ""), name+".sock")
	}
	if err := os.MkdirAll(o.StateDir, 0o750); err != nil {
		return fmt.Errorf("deploy: state directory: %w", err)
	}

	// The region lives as long as the deployment: it survives partition
	// restarts, so the bridge keeps the last image while the partition is down.
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		return err
	}
	regionPath := "/dev/shm/mkrt-" + name
	size := pow2(layout.Size()) // an ivshmem BAR is a power of two
	region, err := shm.Open(shm.File(regionPath, size, true))
	if err != nil {
		return err
	}
	defer func() {
		region.Close()
		os.Remove(regionPath)
	}()
	if err := shm.Format(region, layout); err != nil {
		return err
	}
	reader, err := shm.AttachReader(region, layout, shm.ReaderOptions{})
	if err != nil {
		return err
	}
	ch := newChannel(reader, tab.Info)

	store := retain.New(filepath.Join(o.StateDir, "retain.json"), log)
	part, err := newPartition(ctx, cfg, o, regionPath, size, store.Path(), ch, log)
	if err != nil {
		return err
	}

	br, err := bridge.New(cfg, ch, bridge.Options{Log: log.With("component", "bridge"), StateDir: o.StateDir, AuditPath: filepath.Join(o.StateDir, "audit.jsonl")})
	if err != nil {
		return err
	}
	period, missed := supervisor.HeartbeatFromConfig(cfg)
	var readyOnce sync.Once
	var sup *supervisor.Supervisor
	sup, err = supervisor.New(supervisor.Options{
		Name: name, Partition: part, Heartbeat: ch, Period: period, Missed: missed,
		StartTimeout: startTimeout(cfg), ExitOnGiveUp: true,
		Tasks: ch, Links: bridgeLinks{br}, Log: log.With("component", "supervisor"),
		Listeners: []supervisor.Listener{supervisor.ListenerFuncs{
			Up: func(string) {
				ch.setUp(true, "")
				if o.Ready != nil {
					readyOnce.Do(func() {
						go func() {
							ch.awaitRT(time.Second)
							o.Ready(Ready{Config: cfg, Socket: o.Socket, Region: regionPath, StateDir: o.StateDir, Bridge: br.Status(), Partition: ch.withRT(sup.Status())})
						}()
					})
				}
			},
			Down: func(_ string, f supervisor.Fault) { ch.setUp(false, f.Reason) },
		}},
	})
	if err != nil {
		return err
	}
	srv, err := control.Listen(o.Socket, &controller{ch: ch, sup: sup, cfg: cfg}, control.Options{Log: log})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(what string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", what, err)
				cancel()
			}
		}()
	}
	run("control socket", srv.Serve)
	run("bridge", br.Run)
	run("retain", func(ctx context.Context) error { return keepRetained(ctx, ch, store, log) })
	supErr := sup.Run(ctx)
	cancel()
	wg.Wait()
	close(errs)
	if supErr != nil {
		return supErr
	}
	for e := range errs {
		return e
	}
	return nil
}

// keepRetained saves the retain tags' values when they change (at most once
// a second) and when the deployment stops. Only good values are taken: a
// tag that is not good (a stale image while the partition is down, a
// failed write) keeps the value last saved for it.
func keepRetained(ctx context.Context, ch *channel, store *retain.Store, log *slog.Logger) error {
	infos := ch.Tags()
	var ids []tag.ID
	for i, in := range infos {
		if in.Retain {
			ids = append(ids, tag.ID(i))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	saver := retain.NewSaver(store, time.Second, supervisor.RealClock{}, log)
	done := make(chan error, 1)
	go func() { done <- saver.Run(ctx) }()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	latest := make([]retain.Value, len(ids))
	have := make([]bool, len(ids))
	for {
		select {
		case <-ctx.Done():
			return <-done
		case <-t.C:
		}
		img, err := ch.image()
		if err != nil || img.Cycle == 0 {
			continue
		}
		if updateRetained(latest, have, ids, infos, &img) {
			vals := make([]retain.Value, 0, len(ids))
			for i := range latest {
				if have[i] {
					vals = append(vals, latest[i])
				}
			}
			saver.Update(vals)
		}
	}
}

// updateRetained takes the good values of the retain tags ids from img into
// latest (have marks the ones known) and reports whether any changed.
func updateRetained(latest []retain.Value, have []bool, ids []tag.ID, infos []tag.Info, img *shm.Image) bool {
	changed := false
	for i, id := range ids {
		if int(id) >= len(img.Samples) {
			continue
		}
		s := img.Samples[id]
		if s.Quality != tag.Good {
			continue
		}
		v := retain.Value{Name: infos[id].Name, Value: s.Value, Text: img.Text[id]}
		if have[i] && sameValue(latest[i], v) {
			continue
		}
		latest[i], have[i], changed = v, true, true
	}
	return changed
}

// sameValue is a == b, with NaN equal to NaN.
func sameValue(a, b retain.Value) bool {
	return a == b || (a.Name == b.Name && a.Text == b.Text && a.Value != a.Value && b.Value != b.Value)
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

func defaultDir(rootDir, xdg, homeRel, name string) string {
	if os.Geteuid() == 0 {
		return filepath.Join(rootDir, name)
	}
	if xdg == "" {
		home, _ := os.UserHomeDir()
		xdg = filepath.Join(home, homeRel)
	}
	return filepath.Join(xdg, "mkrt", name)
}

func pow2(n int64) int64 {
	p := int64(4096)
	for p < n {
		p <<= 1
	}
	return p
}
