package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/deploy"
	"github.com/mkrt/mkrt/supervisor/vm"
	"github.com/mkrt/mkrt/supervisor/vm/vmtest"
)

// vmLoop is a level loop closed inside the partition (a PID on a lag that
// models the tank, its sensor a cycle late), so the guest needs no NIC: a NIC cannot be in two
// partitions at once, and a hand-over runs two. 100 ms cycles: the guests
// run under software emulation here.
const vmLoop = `metadata:
  name: %s
partition:
  backend: vm
  cpus: "1"
  memory: 256Mi
tags:
  - {name: level, unit: m}
  - {name: level_sp, unit: m, writable: true, initial: 2.0}
  - {name: valve, unit: "%%"}
  - {name: inflow, unit: m}
  - {name: tank_level, unit: m}
%s
tasks:
  - name: control
    period: 100ms
    priority: 80
    blocks:
      - name: level_pid
        type: pid
        inputs: {pv: level, sp: level_sp}
        params: {kp: 20, ti: 4s}
        outputs: {out: valve}
      - name: valve_to_inflow
        type: scale
        inputs: {in: valve}
        params: {gain: 0.03}
        outputs: {out: inflow}
      - name: tank
        type: lag
        inputs: {in: inflow}
        params: {tau: 3s}
        outputs: {out: tank_level}
      - name: level_sensor
        type: delay
        inputs: {in: tank_level}
        params: {initial: 2.0}
        outputs: {out: level}
%s
watchdog:
  overruns: 10
bridge:
  mqtt:
    broker: embedded
    listen: %s
    username: mkrt
    password: mkrt-demo
`

// TestHandOverVM hands a control loop running as PID 1 of a PREEMPT_RT
// guest over to a second guest built from a changed config: the second
// guest maps the running one's region as a second ivshmem device, relates
// its clock to the first guest's from the heartbeats, and takes the
// outputs and the controller state at a cycle boundary. Both guests boot
// Debian's RT kernel under QEMU (TCG here).
func TestHandOverVM(t *testing.T) {
	init := vmInit(t)
	dir := t.TempDir()
	name := "vmho-" + randHex(t, 3)
	mqtt := fmt.Sprintf("127.0.0.1:%d", bridgetest.FreePort(t))
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(vmLoop, name, "", "", mqtt)), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := fmt.Sprintf(vmLoop, name, "  - {name: level_high, type: bool}", `      - name: level_alarm
        type: alarm
        inputs: {in: level}
        params: {hi: 2.8}
        outputs: {hi: level_high}`, mqtt)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := runVMDeployment(ctx, t, cfgPath, init, dir)
	defer d.stop()
	client, log, stop := d.client, d.log, d.stop
	tag := func(name string) (control.TagValue, bool) { return readTag(ctx, client, name) }
	// Settled: the level at the setpoint and the valve where it holds it
	// there (2.0 m / 0.03), which only the PID's integral gives.
	eventually(t, 180*time.Second, "the loop settled at the setpoint", func() (bool, string) {
		lv, ok1 := tag("level")
		vv, ok2 := tag("valve")
		return ok1 && ok2 && lv.Quality == "good" && math.Abs(lv.Value-2.0) < 0.01 && math.Abs(vv.Value-2.0/0.03) < 0.5,
			fmt.Sprintf("level %.3f valve %.2f", lv.Value, vv.Value)
	})

	// Watch the valve through the hand-over: every published change of it
	// on the serving generation, by time.
	var mu sync.Mutex
	var valves []float64
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for wctx.Err() == nil {
			if tv, ok := tag("valve"); ok && tv.Quality == "good" {
				mu.Lock()
				valves = append(valves, tv.Value)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	mu.Lock()
	before := len(valves)
	mu.Unlock()

	actx, acancel := context.WithTimeout(ctx, 300*time.Second)
	res, err := client.Apply(actx, "", []byte(changed))
	acancel()
	if err != nil || !res.Applied {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	t.Logf("apply: %s", res.Message)
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "starting on standby to take over") {
			t.Logf("second guest: %s", l) // how it related the two guests' clocks
		}
	}
	time.Sleep(2 * time.Second)
	stopWatch()
	<-watched

	st, err := client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ho := st.HandOver
	if ho == nil || ho.Generation != 2 {
		t.Fatalf("status after the hand-over: %+v", st.HandOver)
	}
	if ho.Missed != 0 || ho.Carried != 4 || ho.Fresh != 1 || ho.Mode != wire.Driving {
		t.Fatalf("hand-over: %+v; want 0 missed, 4 blocks carried, 1 fresh, driving", ho)
	}
	if tv, ok := tag("level_high"); !ok || tv.Quality != "good" || tv.Value != 0 {
		t.Fatalf("the new program's alarm: %+v", tv)
	}
	// The controller state came along: the valve goes on where it was,
	// without the step of a fresh PID (no integral: a valve near 0).
	mu.Lock()
	defer mu.Unlock()
	if len(valves) < before+10 {
		t.Fatalf("only %d valve samples", len(valves))
	}
	var stepBefore, stepAcross float64
	for i := 1; i < len(valves); i++ {
		d := math.Abs(valves[i] - valves[i-1])
		if i < before {
			stepBefore = math.Max(stepBefore, d)
		} else {
			stepAcross = math.Max(stepAcross, d)
		}
	}
	fmt.Printf("vm hand-over: generation %d at cycle %d, %d missed cycles, %d retries, %v from apply to switch; largest valve step %.4f %% across the switch, %.4f %% before\n",
		ho.Generation, ho.Cycle, ho.Missed, ho.Retries, ho.Took.Round(time.Millisecond), stepAcross, stepBefore)
	if stepAcross > math.Max(10*stepBefore, 0.5) {
		t.Fatalf("the valve stepped %.3f %% across the switch (%.3f %% before): the controller state did not carry over", stepAcross, stepBefore)
	}
	if !strings.Contains(res.Message, "0 missed cycles") {
		t.Errorf("apply message %q does not report 0 missed cycles", res.Message)
	}
	stop()
}

// vmInit skips without QEMU or Debian's PREEMPT_RT kernel, and builds the
// mkrt-init the guests boot.
func vmInit(t *testing.T) string {
	t.Helper()
	vmtest.Kernel(t)
	return vmtest.Init(t)
}

// vmDeployment is deploy.Run of a vm config, up.
type vmDeployment struct {
	client *control.Client
	log    *syncBuffer
	stop   func()
}

// runVMDeployment runs the config at cfgPath until the guest is up; stop
// ends it (bounded) and reports what Run returned.
func runVMDeployment(ctx context.Context, t *testing.T, cfgPath, init, dir string) *vmDeployment {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	d := &vmDeployment{log: &syncBuffer{}}
	sock := filepath.Join(dir, "ctl.sock")
	readyc, done := make(chan deploy.Ready, 1), make(chan error, 1)
	go func() {
		done <- deploy.Run(ctx, deploy.Options{ConfigPath: cfgPath, StateDir: filepath.Join(dir, "state"), Socket: sock, Init: init,
			HandOverTimeout: 60 * time.Second,
			Log:             slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Ready:           func(r deploy.Ready) { readyc <- r }})
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deployment log:\n%s", d.log.String())
		}
	})
	stopped := false
	d.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("deploy.Run: %v", err)
			}
		case <-time.After(90 * time.Second):
			t.Errorf("deploy.Run did not return within 90s of its context ending")
		}
	}
	select {
	case <-readyc:
	case err := <-done:
		stopped = true
		cancel()
		t.Fatalf("deploy.Run returned before the guest was up: %v", err)
	case <-time.After(240 * time.Second):
		d.stop()
		t.Fatal("guest not up within 240s")
	}
	d.client = control.NewClient(sock)
	return d
}

// readTag reads one tag through the control socket, bounded by 5s.
func readTag(ctx context.Context, client *control.Client, name string) (control.TagValue, bool) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tags, err := client.Tags(c)
	if err != nil {
		return control.TagValue{}, false
	}
	for _, tv := range tags {
		if tv.Name == name {
			return tv, true
		}
	}
	return control.TagValue{}, false
}

// TestHandOverVMFieldNetwork hands the tank demo (tank-level-vm.yaml) over
// to a second guest while the tank is controlled through the guests'
// dedicated NICs: taps in a bridge, the tank simulator in a network
// namespace behind it (vmtest.Field), nothing on the host's own
// interfaces. The second guest gets a tap of its own on the bridge
// (<tap>-2) and the config's standby_address, so both guests poll the tank
// side by side until the switch; the level stays at its setpoint, no cycle
// is missed, and the taps are gone once the plant stops.
func TestHandOverVMFieldNetwork(t *testing.T) {
	init := vmInit(t)
	field := vmtest.NewField(t, "10.213.12.0/24")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Through the hand-over the level stays within tol of the setpoint, or
	// no further off than half again the most it wandered before: a 100 ms
	// loop around a plant running 60 times faster than real time wanders a
	// few centimetres by itself (the tank is 3 m high, its alarms at 0.4
	// and 2.6 m).
	const sp, tol = 1.5, 0.1
	tank := sim.NewTank()
	tank.Level = sp
	field.StartSim(t, ctx, tank, 15020, 60)

	example, err := os.ReadFile("../../configs/examples/tank-level-vm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name, tap := "vmfield-"+randHex(t, 3), vmtest.Tap()
	tap2 := vm.TapName(tap, 2)
	cfgText := replaceOnce(t, string(example),
		"name: tank-level-vm", "name: "+name,
		"interface: mkrt-tank0", "interface: "+tap,
		"address: 10.213.0.2/24", "address: "+field.Addr(2),
		"bridge: br-field", "bridge: "+field.Bridge,
		"standby_address: 10.213.0.3/24", "standby_address: "+field.Addr(3),
		"address: 10.213.0.1:15020", "address: "+field.Device()+":15020",
		// Software emulation: a slower cycle than the example's.
		"period: 20ms", "period: 100ms",
		"initial: 2.5", fmt.Sprintf("initial: %g", sp),
		// The PID starts at the valve that holds the level (see newPlant).
		"td: 0s", fmt.Sprintf("td: 0s\n          bias: %.1f", 40*math.Sqrt(sp)),
		"overruns: 3", "overruns: 10",
		"listen: 127.0.0.1:11883", fmt.Sprintf("listen: 127.0.0.1:%d", bridgetest.FreePort(t)),
		"listen: 127.0.0.1:15021", fmt.Sprintf("listen: 127.0.0.1:%d", bridgetest.FreePort(t)),
		"listen: 127.0.0.1:9102", fmt.Sprintf("listen: 127.0.0.1:%d", bridgetest.FreePort(t)))
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	d := runVMDeployment(ctx, t, cfgPath, init, dir)
	defer d.stop()
	level := func() (float64, bool) {
		tv, ok := readTag(ctx, d.client, "level")
		return tv.Value, ok && tv.Quality == "good"
	}
	eventually(t, 120*time.Second, "the level good at its setpoint", func() (bool, string) {
		lv, ok := level()
		return ok && math.Abs(lv-sp) < tol, fmt.Sprintf("level %.3f (good %v)", lv, ok)
	})

	// Through the hand-over: the level as SCADA reads it, and the taps on
	// the bridge.
	var mu sync.Mutex
	var samples, notGood int
	var worst [3]float64 // before the apply, during it, after the switch
	phase := 0
	bothTaps := false
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for wctx.Err() == nil {
			lv, ok := level()
			both := onBridge(tap, field.Bridge) && onBridge(tap2, field.Bridge)
			mu.Lock()
			samples++
			if ok {
				worst[phase] = math.Max(worst[phase], math.Abs(lv-sp))
			} else {
				notGood++
			}
			bothTaps = bothTaps || both
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(5 * time.Second)
	cfg, err := configs.LoadBytes(cfgPath, []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	changeStructure(cfg)
	changed, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	phase = 1
	mu.Unlock()
	actx, acancel := context.WithTimeout(ctx, 300*time.Second)
	res, err := d.client.Apply(actx, "", changed)
	acancel()
	mu.Lock()
	phase = 2
	mu.Unlock()
	if err != nil || !res.Applied {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	t.Logf("apply: %s", res.Message)
	time.Sleep(10 * time.Second) // generation 2 alone drives the tank
	stopWatch()
	<-watched

	st, err := d.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ho := st.HandOver
	if ho == nil || ho.Generation != 2 || ho.Missed != 0 || ho.Mode != wire.Driving {
		t.Fatalf("status after the hand-over: %+v; want generation 2 driving, 0 missed", ho)
	}
	neigh, err := field.Neighbors()
	if err != nil {
		t.Fatal(err)
	}
	lv, ok := level()
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("vm hand-over on the field network: generation %d at cycle %d, %d missed cycles, %v from apply to switch; level off its setpoint %g m by at most %.3f m before the apply, %.3f m during it, %.3f m in the 10 s after (%d samples, %d not good), now %.3f m; the tank's neighbours %v\n",
		ho.Generation, ho.Cycle, ho.Missed, ho.Took.Round(time.Millisecond), sp, worst[0], worst[1], worst[2], samples, notGood, lv, neigh)
	if !bothTaps {
		t.Errorf("never saw %s and %s on %s at once", tap, tap2, field.Bridge)
	}
	guest1, guest2 := strings.Split(field.Addr(2), "/")[0], strings.Split(field.Addr(3), "/")[0]
	if neigh[guest1] != vm.TapMAC(tap) || neigh[guest2] != vm.TapMAC(tap2) {
		t.Errorf("the tank saw %v; want %s at %s (generation 1) and %s at %s (generation 2)", neigh, guest1, vm.TapMAC(tap), guest2, vm.TapMAC(tap2))
	}
	limit := max(tol, 1.5*worst[0])
	if w := max(worst[1], worst[2]); w > limit || notGood > 0 || !ok || math.Abs(lv-sp) > limit {
		t.Errorf("the level left its setpoint %g±%.3f m: worst %.3f m, %d of %d samples not good, now %.3f (good %v)", sp, limit, w, notGood, samples, lv, ok)
	}
	if !strings.Contains(res.Message, "0 missed cycles") {
		t.Errorf("apply message %q does not report 0 missed cycles", res.Message)
	}
	d.stop()
	for _, l := range []string{tap, tap2} {
		if _, err := netlink.LinkByName(l); err == nil {
			t.Errorf("tap %s left behind after the stop", l)
		}
	}
}

// onBridge reports whether link exists as a port of bridge.
func onBridge(link, bridge string) bool {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return false
	}
	br, err := netlink.LinkByName(bridge)
	return err == nil && l.Attrs().MasterIndex == br.Attrs().Index
}
