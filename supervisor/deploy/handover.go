package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// A hand-over replaces the running generation of the partition by one
// built from a structurally changed config without stopping control: the
// new generation's executive starts on standby on the running one's cycle
// grid (mkrt executive --take-from on the process backend; on the vm
// backend a second guest that maps the running region as a second ivshmem
// device, mkrt.take=), SwitchOver moves the outputs and the
// controller state to it at a cycle boundary, then the deployment's bridge
// switches to the new region (bridge.Switch: the broker and every SCADA
// session stay, no NDEATH; a Sparkplug rebirth with the same bdSeq only
// when the metrics changed; JSON topics updated; the Modbus register map
// switched on the same listener) and the old generation stops. Until the
// switch is confirmed nothing of the running generation changes, and any
// failure tears the new one down.

// ErrNoHandOver classifies a structural change that cannot be handed over
// to a running partition; the plant is left as it was.
var ErrNoHandOver = errors.New("deploy: the change cannot be handed over")

// defaultHandOverTimeout bounds SwitchOver once the new generation is on
// standby.
const defaultHandOverTimeout = 10 * time.Second

func (o Options) handOverTimeout() time.Duration {
	if o.HandOverTimeout > 0 {
		return o.HandOverTimeout
	}
	return defaultHandOverTimeout
}

// handOverPlan is where and how the next generation runs.
type handOverPlan struct {
	cpus    configs.CPUList
	standby bool // on the standby CPUs (else the same CPUs as now)
}

// planHandOver decides whether the change from the running generation
// (cur, its config as written old and its partition status st) to nc can
// be handed over, and on which CPUs the new generation starts. backend is
// the backend mkrt run was told to use ("" keeps the config's).
func planHandOver(old, nc *configs.Config, running []int, st supervisor.Status, backend configs.Backend) (handOverPlan, error) {
	var p handOverPlan
	be := func(c *configs.Config) configs.Backend {
		if backend != "" {
			return backend
		}
		if c.Partition.Backend == "" {
			return configs.BackendProcess
		}
		return c.Partition.Backend
	}
	switch ob, nb := be(old), be(nc); {
	case ob != nb:
		return p, fmt.Errorf("%w: the backend changes from %s to %s; stop and start the partition with the new config", ErrNoHandOver, ob, nb)
	case ob == configs.BackendJailhouse:
		return p, fmt.Errorf("%w: mkrt run does not hand over on %s (a second cell would need the running cell's region in its config); stop and start the partition with the new config", ErrNoHandOver, ob)
	case old.Metadata.Name != nc.Metadata.Name:
		return p, fmt.Errorf("%w: metadata.name changes from %q to %q: that is another partition; stop this one and run the other", ErrNoHandOver, old.Metadata.Name, nc.Metadata.Name)
	case len(old.Tasks) != 1 || len(nc.Tasks) != 1:
		return p, fmt.Errorf("%w: a hand-over moves one cyclic task (the running config has %d, the new one %d); stop and start the partition with the new config", ErrNoHandOver, len(old.Tasks), len(nc.Tasks))
	case old.Tasks[0].Period.D() != nc.Tasks[0].Period.D():
		return p, fmt.Errorf("%w: the task period changes from %v to %v: the new program must run on the running one's cycle grid; stop and start the partition with the new config", ErrNoHandOver, old.Tasks[0].Period.D(), nc.Tasks[0].Period.D())
	case len(old.Partition.NICs) > 0 || len(nc.Partition.NICs) > 0:
		// On the vm backend a tap in a bridge is the guest's own, so both
		// generations can be on the field network during the switch: the
		// new guest gets a tap of its own on the bridge and, since both
		// poll the devices until then, its own address (standby_address).
		notInBridge := func(n configs.NIC) bool { return n.PCI != "" || n.Bridge == "" }
		if ob != configs.BackendVM || slices.ContainsFunc(old.Partition.NICs, notInBridge) || slices.ContainsFunc(nc.Partition.NICs, notInBridge) {
			hint := ""
			if ob == configs.BackendVM {
				hint = " (on the vm backend a tap in a bridge, nics[].bridge, can be: each generation's guest gets a tap of its own)"
			}
			return p, fmt.Errorf("%w: the partition has a dedicated NIC, which cannot be in two partitions at once%s; stop and start the partition with the new config", ErrNoHandOver, hint)
		}
		same := func(a, b configs.NIC) bool {
			a.Pos, b.Pos = configs.Pos{}, configs.Pos{} // where it is written does not matter
			return a == b
		}
		if !slices.EqualFunc(old.Partition.NICs, nc.Partition.NICs, same) {
			return p, fmt.Errorf("%w: partition.nics change; a hand-over keeps the field network as it is; stop and start the partition with the new config", ErrNoHandOver)
		}
		for _, n := range nc.Partition.NICs {
			if n.StandbyAddress == "" {
				return p, fmt.Errorf("%w: nic %s: the new guest polls the field devices beside the running one until the switch and needs an address of its own on bridge %s; set its standby_address", ErrNoHandOver, n.Interface, n.Bridge)
			}
		}
	}
	p.cpus = nc.Partition.CPUs
	if overlap(p.cpus, running) {
		if len(nc.Partition.StandbyCPUs) > 0 && !overlap(nc.Partition.StandbyCPUs, running) {
			p.cpus, p.standby = nc.Partition.StandbyCPUs, true
		} else if held := st.Isolation.CPUSet; held != "" && held != "none" {
			return p, fmt.Errorf("%w: the running partition holds CPUs %s in a cpuset (%s), so the new program cannot start beside it there; set partition.standby_cpus to as many other CPUs", ErrNoHandOver, configs.CPUList(running), held)
		}
	}
	return p, nil
}

func overlap(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// onCPUs returns a copy of nc that runs on cpus: partition.cpus becomes
// cpus (and standby_cpus the CPUs it replaces) and each task's cpu moves
// to the CPU at the same place in the list.
func onCPUs(nc *configs.Config, cpus configs.CPUList) (*configs.Config, error) {
	text, err := nc.Marshal()
	if err != nil {
		return nil, err
	}
	c, err := configs.LoadBytes("applied config", text)
	if err != nil {
		return nil, err
	}
	if slices.Equal(c.Partition.CPUs, cpus) {
		return c, nil
	}
	from := c.Partition.CPUs
	c.Partition.CPUs, c.Partition.StandbyCPUs = slices.Clone(cpus), slices.Clone(from)
	for i := range c.Tasks {
		if t := &c.Tasks[i]; t.CPU != nil {
			if at := slices.Index(from, *t.CPU); at >= 0 && at < len(cpus) {
				cpu := cpus[at]
				t.CPU = &cpu
			}
		}
	}
	return c, nil
}

// handOver replaces the current generation by one running nc (validated
// and compiled; blocks.ParamChanges found it structural). The caller holds
// applyMu. On any failure before the switch the new generation is torn
// down and the current one keeps running untouched.
func (d *deployment) handOver(ctx context.Context, nc *configs.Config) (control.ApplyResult, error) {
	var out control.ApplyResult
	begin := time.Now()
	cur := d.current()
	plan, err := planHandOver(cur.applied, nc, cur.cfg.Partition.CPUs, cur.sup.Status(), d.o.Backend)
	if err != nil {
		return out, fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	if st := cur.sup.Status(); st.State != supervisor.Running {
		return out, fmt.Errorf("%w: the running partition is %s: a hand-over needs it running (apply again once it is, or stop and start it with the new config)", control.ErrUnavailable, st.State)
	}
	// The hand-over stops with the deployment, and with the client before
	// the switch.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.ctx, cancel)()

	d.mu.Lock()
	n := d.n + 1
	d.mu.Unlock()
	gcfg, cfgFile, err := d.writeGenerationConfig(nc, plan.cpus, n)
	if err != nil {
		return out, fmt.Errorf("%w: %v", control.ErrUnavailable, err)
	}
	next, err := d.newGeneration(n, gcfg, nc, cfgFile, cur.takeFromArg(), nil, nil)
	if err != nil {
		os.Remove(cfgFile)
		return out, fmt.Errorf("%w: generation %d: %v; the running partition is unchanged", control.ErrUnavailable, n, err)
	}
	log := d.log.With("generation", n)
	log.Info("hand-over: starting the new control program on standby", "cpus", plan.cpus.String(), "region", next.loc.String())
	next.start()
	sw, err := d.switchTo(ctx, cur, next)
	if err != nil {
		next.stopPartition()
		next.close()
		log.Warn("hand-over failed; the running generation keeps the outputs", "err", err)
		return out, fmt.Errorf("%w: hand-over to generation %d failed, generation %d keeps running: %v", control.ErrUnavailable, n, cur.n, err)
	}
	next.standby.switched.Store(true) // a restart from now on is an ordinary start

	// The switch cycle on the running generation's cycle counter.
	hb := cur.reader.Heartbeat()
	cycle := hb.Cycle
	if per := int64(sw.Period); per > 0 {
		cycle = uint64(int64(hb.Cycle) - (hb.MonoNs-sw.Switch+per/2)/per)
	}
	ho := &supervisor.HandOver{Generation: n, Cycle: cycle, Time: time.Now(), Missed: sw.Missed, Retries: sw.Retries,
		BlockCounts: sw.Blocks, Took: time.Since(begin), CPUs: plan.cpus.String()}
	d.mu.Lock()
	d.cur, d.n, d.last = next, n, ho
	d.mu.Unlock()
	log.Info("hand-over: switched", "cycle", cycle, "missed", sw.Missed, "retries", sw.Retries, "carried", sw.Blocks.Carried, "fresh", sw.Blocks.Fresh, "dropped", sw.Blocks.Dropped, "took", ho.Took)

	// Serve the new region (the bridge switches to it); then the old
	// generation, which drives nothing any more, stops and its region goes.
	cur.stopServing()
	if err := next.serve(); err != nil {
		d.report(event{g: next, what: "bridge", err: err})
	}
	cur.stopPartition()
	cur.close()

	carried, fresh, dropped := blockChanges(cur.applied, nc)
	out.Applied = true
	for _, c := range []struct {
		what  string
		names []string
	}{{"carried", carried}, {"fresh", fresh}, {"dropped", dropped}} {
		if len(c.names) > 0 {
			out.Changes = append(out.Changes, fmt.Sprintf("%s: %s", c.what, strings.Join(c.names, ", ")))
		}
	}
	where := "on the same CPUs " + plan.cpus.String()
	if plan.standby {
		where = "on the standby CPUs " + plan.cpus.String()
	}
	out.Message = fmt.Sprintf("handed over to generation %d %s at cycle %d: %d missed cycles, %d retries, %d blocks carried (%d fresh, %d dropped), %v from apply to switch",
		n, where, cycle, sw.Missed, sw.Retries, sw.Blocks.Carried, sw.Blocks.Fresh, sw.Blocks.Dropped, ho.Took.Round(time.Millisecond))
	return out, nil
}

// writeGenerationConfig writes generation n's config (nc on cpus, and on
// the backend mkrt run was told to use) to the state directory and loads
// it back as its executive will.
func (d *deployment) writeGenerationConfig(nc *configs.Config, cpus configs.CPUList, n int) (*configs.Config, string, error) {
	c, err := onCPUs(nc, cpus)
	if err != nil {
		return nil, "", err
	}
	if d.o.Backend != "" {
		c.Partition.Backend = d.o.Backend
	}
	text, err := c.Marshal()
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(d.o.StateDir, fmt.Sprintf("generation-%d.yaml", n))
	if err := os.WriteFile(path, text, 0o600); err != nil { // it holds every MQTT password
		return nil, "", fmt.Errorf("deploy: %w", err)
	}
	loaded, err := configs.Load(path)
	if err != nil {
		os.Remove(path)
		return nil, "", err
	}
	return loaded, path, nil
}

// switchTo waits for next to be on standby and moves the outputs from cur
// to it. A switch confirmed only after the deadline still counts: once the
// new generation drives, it must not be torn down.
func (d *deployment) switchTo(ctx context.Context, cur, next *generation) (Switched, error) {
	if err := next.awaitUp(ctx); err != nil {
		return Switched{}, err
	}
	nh := next.reader.HandOver()
	for nh.Counters().Mode != wire.Standby {
		select {
		case <-ctx.Done():
			return Switched{}, fmt.Errorf("deploy: generation %d is %v, not on standby: %w", next.n, nh.Counters().Mode, ctx.Err())
		case <-next.supDone:
			return Switched{}, fmt.Errorf("deploy: generation %d ended before it was on standby (%s)", next.n, faultOf(next.sup.Status()))
		case <-time.After(5 * time.Millisecond):
		}
	}
	sctx, cancel := context.WithTimeout(ctx, d.o.handOverTimeout())
	defer cancel()
	sw, err := SwitchOver(sctx, cur.reader, next.reader, SwitchOptions{Mono: partitionClock(cur)})
	if err != nil {
		if nc := nh.Counters(); nc.Mode == wire.Driving && cur.reader.HandOver().Counters().Mode == wire.Released {
			d.log.Warn("hand-over: the switch was confirmed after its deadline", "err", err)
			sw.Switch, sw.Missed, sw.Retries = nc.Switch, nc.Missed, nc.Retries
			sw.Blocks = nc.Blocks
			_, per, _ := nh.Grid()
			sw.Period = time.Duration(per)
			return sw, nil
		}
		return sw, err
	}
	return sw, nil
}

// partitionClock reads the clock g's executive schedules its cycles on,
// where the switch time is chosen. A process partition shares this
// kernel's CLOCK_MONOTONIC. A guest or second kernel has its own, so its
// heartbeat time (the end of its last cycle, at most a period old) stands
// in: SwitchOver places the switch many periods ahead of it.
func partitionClock(g *generation) func() int64 {
	if g.part.Backend() == string(configs.BackendProcess) {
		return func() int64 { return int64(rt.Monotonic{}.Now()) }
	}
	return func() int64 { return g.reader.Heartbeat().MonoNs }
}

// blockChanges names the blocks whose state carries over from old to nc
// (same name and type), the new ones and the dropped ones.
func blockChanges(old, nc *configs.Config) (carried, fresh, dropped []string) {
	types := func(c *configs.Config) map[string]string {
		m := map[string]string{}
		for _, t := range c.Tasks {
			for _, b := range t.Blocks {
				m[b.Name] = b.Type
			}
		}
		return m
	}
	ot, nt := types(old), types(nc)
	for name, typ := range nt {
		if ot[name] == typ {
			carried = append(carried, name)
		} else {
			fresh = append(fresh, name)
		}
	}
	for name, typ := range ot {
		if nt[name] != typ {
			dropped = append(dropped, name)
		}
	}
	slices.Sort(carried)
	slices.Sort(fresh)
	slices.Sort(dropped)
	return carried, fresh, dropped
}

// standbyPartition is the partition of a generation that starts on
// standby: its first start takes over from the running generation
// (--take-from); once it has switched, a restart is an ordinary start,
// since there is nothing left to take over from.
type standbyPartition struct {
	standby, normal supervisor.Partition
	switched        atomic.Bool

	mu     sync.Mutex
	active supervisor.Partition
}

func (p *standbyPartition) cur() supervisor.Partition {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active == nil {
		return p.standby
	}
	return p.active
}

// Backend names the backend.
func (p *standbyPartition) Backend() string { return p.standby.Backend() }

// Start starts on standby before the switch, ordinarily after it.
func (p *standbyPartition) Start(ctx context.Context) error {
	next := p.standby
	if p.switched.Load() {
		next = p.normal
	}
	p.mu.Lock()
	p.active = next
	p.mu.Unlock()
	return next.Start(ctx)
}

// Wait waits for the program started last.
func (p *standbyPartition) Wait(ctx context.Context) (supervisor.Exit, error) {
	return p.cur().Wait(ctx)
}

// Stop stops the program started last.
func (p *standbyPartition) Stop(ctx context.Context) error { return p.cur().Stop(ctx) }

// Kill kills the program started last.
func (p *standbyPartition) Kill() error { return p.cur().Kill() }

// Info is the program started last's.
func (p *standbyPartition) Info() supervisor.Info { return p.cur().Info() }

// Console is the program started last's.
func (p *standbyPartition) Console() []string { return p.cur().Console() }

// handOverStatus is the last hand-over with the serving generation g's
// counters now, for mkrt status; nil before the first hand-over.
func (d *deployment) handOverStatus(g *generation) *supervisor.HandOver {
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	if last == nil || last.Generation != g.n {
		return nil
	}
	h := *last
	c := g.reader.HandOver().Counters()
	h.Mode, h.Driven = c.Mode, c.Driven
	h.Missed = max(h.Missed, c.Missed)
	return &h
}
