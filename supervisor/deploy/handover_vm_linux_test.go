package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/deploy"
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
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	if ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*"); len(ks) == 0 {
		t.Skip("no PREEMPT_RT kernel in /boot (apt-get install linux-image-rt-amd64)")
	}
	dir := t.TempDir()
	init := filepath.Join(dir, "mkrt-init")
	build := exec.Command("go", "build", "-o", init, "github.com/mkrt/mkrt/cmd/mkrt-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building mkrt-init: %v\n%s", err, out)
	}
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
	log := &syncBuffer{}
	sock := filepath.Join(dir, "ctl.sock")
	readyc, done := make(chan deploy.Ready, 1), make(chan error, 1)
	go func() {
		done <- deploy.Run(ctx, deploy.Options{ConfigPath: cfgPath, StateDir: filepath.Join(dir, "state"), Socket: sock, Init: init,
			HandOverTimeout: 60 * time.Second,
			Log:             slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Ready:           func(r deploy.Ready) { readyc <- r }})
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deployment log:\n%s", log.String())
		}
	})
	stopped := false
	stop := func() {
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
	defer stop()
	select {
	case <-readyc:
	case err := <-done:
		stopped = true
		t.Fatalf("deploy.Run returned before the guest was up: %v", err)
	case <-time.After(240 * time.Second):
		t.Fatal("guest not up within 240s")
	}
	client := control.NewClient(sock)
	tag := func(name string) (control.TagValue, bool) {
		c, cc := context.WithTimeout(ctx, 5*time.Second)
		defer cc()
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
	res, err := client.Apply(actx, []byte(changed))
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
