package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/retain"
)

// The demo plant's level settles on its setpoint, and setpoints written
// over MQTT (a Sparkplug NCMD from a host) and over Modbus TCP move it.
func TestRunSettlesAndFollowsSetpoints(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5, speed: 120})
	if st := p.status(); st.State != supervisor.Running || st.Exec != wire.Running {
		t.Fatalf("status after Ready: %s / executive %s, want running / running", st.State, st.Exec)
	}
	p.waitSettled(1.5, 0.05, 3*time.Second, 60*time.Second)

	// A Sparkplug host (the writable scada user) raises the setpoint.
	publishNCMD(t, p.mqttAddr, "scada", "scada-demo", "spBv1.0/demo/NCMD/tank-1", "level_sp", 1.7)
	eventually(t, 10*time.Second, "level_sp = 1.7 after the NCMD", func() (bool, string) {
		v, ok := p.good("level_sp")
		return ok && v == 1.7, fmt.Sprintf("level_sp %g (good %v)", v, ok)
	})
	eventually(t, 40*time.Second, "level rising above 1.62 m after the NCMD", func() (bool, string) {
		v, ok := p.good("level")
		return ok && v > 1.62, fmt.Sprintf("level %.3f", v)
	})

	// A Modbus TCP master lowers it through holding registers 0-1.
	modbusWriteFloat(t, p.modbus, 0, 1.3)
	eventually(t, 10*time.Second, "level_sp = 1.3 after the Modbus write", func() (bool, string) {
		v, ok := p.good("level_sp")
		return ok && math.Abs(v-1.3) < 1e-6, fmt.Sprintf("level_sp %g (good %v)", v, ok)
	})
	if got := modbusReadFloat(t, p.modbus, 0); math.Abs(got-1.3) > 1e-6 {
		t.Errorf("Modbus holding 0-1 reads %g after writing 1.3", got)
	}
	eventually(t, 40*time.Second, "level falling below 1.45 m after the Modbus write", func() (bool, string) {
		v, ok := p.good("level")
		return ok && v < 1.45, fmt.Sprintf("level %.3f", v)
	})
	if err := p.stop(); err != nil {
		t.Fatalf("clean stop: deploy.Run = %v, want nil", err)
	}
}

// kill -9 of the executive: the supervisor declares the fault from the
// child's exit, SCADA sees the field device die (DDEATH) and the values go
// stale, the partition restarts from the retained values, the device is
// born again and control resumes. Prints detection latency and restart time.
func TestRunKillRestartsWithRetainedValues(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5})
	sub := subscribe(t, p.mqttAddr, "viewer", "viewer-demo", "spBv1.0/demo/#")
	hb := p.regionReader()

	// A setpoint written through the control socket is retained on disk.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.client.Set(ctx, "level_sp", "1.6")
	if err != nil || !res.Applied {
		t.Fatalf("mkrt set level_sp 1.6 = %+v, %v", res, err)
	}
	store := retain.New(filepath.Join(p.stateDir, "retain.json"), nil)
	eventually(t, 10*time.Second, "level_sp 1.6 saved in retain.json", func() (bool, string) {
		vals, err := store.Load()
		for _, v := range vals {
			if v.Name == "level_sp" {
				return v.Value == 1.6, fmt.Sprintf("saved %g", v.Value)
			}
		}
		return false, fmt.Sprintf("not saved yet (%v)", err)
	})

	const kills = 3
	var detect, restart []time.Duration
	for k := range kills {
		before := p.status()
		if before.State != supervisor.Running || before.PID == 0 {
			t.Fatalf("kill %d: partition %s (pid %d), want running", k, before.State, before.PID)
		}
		killed := time.Now()
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", before.PID, err)
		}
		// kill → first good cycle: a new executive's heartbeat runs.
		var firstGood time.Duration
		eventually(t, 30*time.Second, "a new executive running cycles", func() (bool, string) {
			h := hb.Heartbeat()
			if h.PID == 0 || int(h.PID) == before.PID || h.State != wire.Running || h.Cycle == 0 {
				return false, fmt.Sprintf("pid %d state %d cycle %d", h.PID, h.State, h.Cycle)
			}
			if firstGood == 0 {
				firstGood = time.Since(killed)
			}
			return true, ""
		})
		var after supervisor.Status
		eventually(t, 30*time.Second, "partition running again after kill -9", func() (bool, string) {
			after = p.status()
			return after.State == supervisor.Running && after.Restarts == before.Restarts+1, fmt.Sprintf("%s, %d restarts", after.State, after.Restarts)
		})
		if after.LastFault == nil {
			t.Fatalf("kill %d: no last fault in status after a kill -9", k)
		}
		// Declared from the child's exit (immediately), not from missed
		// heartbeats: well inside the heartbeat watchdog's window.
		if !strings.Contains(after.LastFault.Reason, "killed") {
			t.Errorf("kill %d: fault reason %q, want the exit by SIGKILL", k, after.LastFault.Reason)
		}
		detect = append(detect, after.LastFault.Time.Sub(killed))
		restart = append(restart, firstGood)
		eventually(t, 10*time.Second, "level good after the restart", func() (bool, string) {
			_, ok := p.good("level")
			return ok, ""
		})
		if v, ok := p.good("level_sp"); !ok || v != 1.6 {
			t.Errorf("kill %d: level_sp after the restart = %g (good %v), want the retained 1.6", k, v, ok)
		}
	}

	// The subscriber saw the field device die at each kill and be born
	// again after each restart (its first birth came before it subscribed).
	eventually(t, 10*time.Second, "a DDEATH and a DBIRTH of device tank per kill", func() (bool, string) {
		d, b := len(sub.since("spBv1.0/demo/DDEATH/tank-1/tank", time.Time{})), len(sub.since("spBv1.0/demo/DBIRTH/tank-1/tank", time.Time{}))
		return d >= kills && b >= kills, fmt.Sprintf("%d DDEATH, %d DBIRTH for %d kills", d, b, kills)
	})
	for _, m := range sub.since("spBv1.0/demo/DBIRTH/tank-1/tank", time.Time{}) {
		if metricByName(decodeSparkplug(t, m.payload), "level") == nil {
			t.Errorf("DBIRTH of device tank without its level metric")
		}
	}
	stale := false
	for _, m := range sub.since("spBv1.0/demo/NDATA/tank-1", time.Time{}) {
		for _, mt := range decodeSparkplug(t, m.payload).GetMetrics() {
			for i, k := range mt.GetProperties().GetKeys() {
				if k == "Quality" && mt.GetProperties().GetValues()[i].GetIntValue() == 500 {
					stale = true
				}
			}
		}
	}
	if !stale {
		t.Errorf("no NDATA reported a node tag stale (quality 500) while the partition was down")
	}

	// Control resumed: the executive cycles and the loop holds the level.
	c0 := hb.Heartbeat().Cycle
	eventually(t, 10*time.Second, "cycles advancing after the restarts", func() (bool, string) {
		c := hb.Heartbeat().Cycle
		return c > c0+10, fmt.Sprintf("cycle %d", c)
	})
	// The restarted loop drives the valve from the retained setpoint: with
	// the level below 1.6 m its output is above the bias that holds 1.5 m.
	eventually(t, 10*time.Second, "inflow valve driven by the restarted PID", func() (bool, string) {
		v, ok := p.good("inflow_valve")
		return ok && v > 40*math.Sqrt(1.5), fmt.Sprintf("inflow_valve %.1f %% (good %v)", v, ok)
	})
	t.Logf("process backend, %d kill -9 of the executive: fault detection (kill → declared) %v; restart (kill → first good cycle) %v", kills, detect, restart)
	t.Logf("process backend: median detection %v, median restart %v", median(detect), median(restart))
}

// A parameter apply changes the PID gain without a missed cycle; a
// structural change and an invalid config are refused with their reason
// and leave the plant running as it was.
func TestRunApply(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5})
	hb := p.regionReader()
	eventually(t, 10*time.Second, "level good", func() (bool, string) { _, ok := p.good("level"); return ok, "" })
	period := 20 * time.Millisecond
	pid0 := p.status().PID
	apply := func(text string) (control.ApplyResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return p.client.Apply(ctx, "", []byte(text))
	}

	// No missed cycle: over the apply the cycle count advances by exactly
	// the number of periods elapsed on the executive's own clock, and no
	// overrun is counted.
	h0 := hb.Heartbeat()
	res, err := apply(replaceOnce(t, p.cfgText, "kp: 100", "kp: 120"))
	if err != nil || !res.Applied || res.Restarted {
		t.Fatalf("apply kp 100 → 120 = %+v, %v; want applied live", res, err)
	}
	if len(res.Changes) != 1 || !strings.HasPrefix(res.Changes[0], "level_pid.kp: 100 -> 120") {
		t.Errorf("apply changes = %q, want level_pid.kp: 100 -> 120", res.Changes)
	}
	time.Sleep(5 * period) // a few cycles after the one that took the change
	h1 := hb.Heartbeat()
	// Heartbeat times are cycle ends: a late wake-up at either sample (this
	// machine is shared) moves the count of periods by one. A skipped cycle
	// always follows an overrun, which the overrun counters below catch.
	periods := (h1.MonoNs - h0.MonoNs + int64(period)/2) / int64(period)
	if cycles := int64(h1.Cycle - h0.Cycle); cycles < periods-1 || cycles > periods+1 || h1.PID != h0.PID {
		t.Errorf("over the apply: %d cycles in %d periods (executive pid %d → %d); want one cycle per period, same executive", cycles, periods, h0.PID, h1.PID)
	}
	if !slices.Equal(h0.Overruns, h1.Overruns) {
		t.Errorf("overruns over the apply: %v → %v, want unchanged", h0.Overruns, h1.Overruns)
	}
	t.Logf("apply: %d cycles in %d periods, overruns %v → %v", h1.Cycle-h0.Cycle, periods, h0.Overruns, h1.Overruns)
	applied := replaceOnce(t, p.cfgText, "kp: 100", "kp: 120")
	if res, err := apply(applied); err != nil || !res.Applied || len(res.Changes) != 0 {
		t.Errorf("re-applying the applied config = %+v, %v; want applied with no change (the running config has kp 120)", res, err)
	}

	sp0, _ := p.good("level_sp")
	for _, tc := range []struct {
		name, text string
		want       *regexp.Regexp
	}{
		{"structural: task period", replaceOnce(t, applied, "period: 20ms", "period: 10ms"), regexp.MustCompile(`cannot be handed over: the task period changes from 20ms to 10ms`)},
		{"structural: another partition", replaceOnce(t, applied, "name: "+p.name, "name: other"), regexp.MustCompile(`cannot be handed over: metadata.name changes`)},
		{"invalid value", replaceOnce(t, applied, "ti: 40s", "ti: soon"), regexp.MustCompile(`applied config:\d+:\d+`)},
		{"unknown key", replaceOnce(t, applied, "td: 0s", "td: 0s\n          kd: 3"), regexp.MustCompile(`applied config:\d+:\d+`)},
		{"not yaml", "metadata: [", regexp.MustCompile(`does not validate`)},
	} {
		c0 := hb.Heartbeat()
		res, err := apply(tc.text)
		if err == nil || res.Applied || !errors.Is(err, control.ErrInvalid) {
			t.Errorf("%s: apply = %+v, %v; want rejected as invalid", tc.name, res, err)
			continue
		}
		if !tc.want.MatchString(err.Error()) {
			t.Errorf("%s: error %q does not match %v", tc.name, err, tc.want)
		}
		eventually(t, 5*time.Second, tc.name+": cycles still advancing", func() (bool, string) {
			return hb.Heartbeat().Cycle > c0.Cycle+3, ""
		})
	}
	st := p.status()
	if st.State != supervisor.Running || st.PID != pid0 || st.Restarts != 0 {
		t.Errorf("after the refused applies: %s, pid %d (was %d), %d restarts; want the same partition running", st.State, st.PID, pid0, st.Restarts)
	}
	if sp, ok := p.good("level_sp"); !ok || sp != sp0 {
		t.Errorf("level_sp after the refused applies = %g (good %v), want %g", sp, ok, sp0)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// Ctrl-C (ctx) stops the deployment cleanly and leaves no cgroup, network
// namespace, shared-memory file, socket or process behind. As root the
// partition gets a dedicated NIC (one end of a veth pair the test makes)
// and reaches the simulator through it from its own namespace.
func TestRunCleanStop(t *testing.T) {
	o := plantOptions{level: 1.5, sp: 1.5}
	var veth [2]string
	if os.Geteuid() != 0 {
		t.Log("not root: the partition runs without a dedicated NIC (no namespace); cgroup, region, socket and process are still checked")
	} else if _, err := exec.LookPath("ip"); err != nil {
		t.Log("no ip command (Debian iproute2): the partition runs without a dedicated NIC")
	} else {
		id := randHex(t, 3)
		veth = [2]string{"mkp" + id, "mkh" + id}
		third := int(id[0])%200 + 20
		host := fmt.Sprintf("10.233.%d.1", third)
		ip(t, "link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
		t.Cleanup(func() { exec.Command("ip", "link", "del", veth[1]).Run() })
		ip(t, "addr", "add", host+"/24", "dev", veth[1])
		ip(t, "link", "set", veth[1], "up")
		o.simHost, o.nic = host, &configNIC{iface: veth[0], address: fmt.Sprintf("10.233.%d.2/24", third)}
	}
	p := newPlant(t, o)
	st := p.status()
	ns := "mkrt-" + p.name
	if o.nic != nil {
		if !slices.Contains(netnsList(t), ns) {
			t.Fatalf("network namespace %s missing while running (have %v)", ns, netnsList(t))
		}
		if out, err := exec.Command("ip", "-n", ns, "-br", "addr", "show", veth[0]).CombinedOutput(); err != nil || !strings.Contains(string(out), o.nic.address) {
			t.Fatalf("ip -n %s addr show %s: %s %v; want the NIC with %s in the namespace", ns, veth[0], out, err, o.nic.address)
		}
	}
	// The executive reads the field (through the NIC when it has one).
	eventually(t, 15*time.Second, "level good from the simulator", func() (bool, string) {
		v, ok := p.good("level")
		return ok, fmt.Sprintf("level %g", v)
	})
	cgroups := cgroupDirs(p.name)
	for _, d := range cgroups {
		if _, err := os.Stat(d); err == nil {
			t.Logf("partition cgroup while running: %s", d)
		}
	}

	if err := p.stop(); err != nil {
		t.Fatalf("clean stop: deploy.Run = %v, want nil", err)
	}
	left := []string{}
	for _, f := range append([]string{p.region, p.sock}, cgroups...) {
		if _, err := os.Stat(f); err == nil {
			left = append(left, f)
		}
	}
	if slices.Contains(netnsList(t), ns) {
		left = append(left, "netns "+ns)
	}
	if err := syscall.Kill(st.PID, 0); !errors.Is(err, syscall.ESRCH) {
		left = append(left, fmt.Sprintf("executive pid %d (kill 0: %v)", st.PID, err))
	}
	if len(left) > 0 {
		t.Errorf("left behind after a clean stop: %v", left)
	}
	if o.nic != nil {
		// The NIC is back in the host's namespace.
		if out, err := exec.Command("ip", "-br", "link", "show", veth[0]).CombinedOutput(); err != nil {
			t.Errorf("dedicated NIC %s not back in the root namespace: %s %v", veth[0], out, err)
		}
	}
}

// kill -9 of `mkrt run` itself: the broker publishes the edge node's will
// (NDEATH with the bdSeq of its NBIRTH) and the executive dies with its
// supervisor. A new deployment then starts over what the dead one left.
func TestRunSupervisorKilledSendsNDEATH(t *testing.T) {
	broker := bridgetest.Mosquitto(t)
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5, broker: broker.URL(false), noRun: true})
	sub := subscribe(t, broker.Addr(), "", "", "spBv1.0/demo/NBIRTH/tank-1", "spBv1.0/demo/NDEATH/tank-1")
	cmd := exec.Command(mkrtBinary(t), "run", p.cfgPath, "--state-dir", p.stateDir, "--socket", p.sock)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		cleanupAfterCrash(p)
	})
	var st supervisor.Status
	eventually(t, 60*time.Second, "mkrt run up", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		st, err = p.client.Status(ctx)
		return err == nil && st.State == supervisor.Running, fmt.Sprintf("%s %v", st.State, err)
	})
	eventually(t, 10*time.Second, "NBIRTH", func() (bool, string) {
		return len(sub.since("spBv1.0/demo/NBIRTH/tank-1", time.Time{})) > 0, ""
	})
	births := sub.since("spBv1.0/demo/NBIRTH/tank-1", time.Time{})
	bdSeq := metric(decodeSparkplug(t, births[len(births)-1].payload), "bdSeq")
	if bdSeq < 0 {
		t.Fatal("NBIRTH has no bdSeq")
	}

	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	eventually(t, 15*time.Second, "NDEATH from the broker", func() (bool, string) {
		return len(sub.since("spBv1.0/demo/NDEATH/tank-1", killed)) > 0, ""
	})
	d := sub.since("spBv1.0/demo/NDEATH/tank-1", killed)[0]
	if got := metric(decodeSparkplug(t, d.payload), "bdSeq"); got != bdSeq {
		t.Errorf("NDEATH bdSeq %d, want the NBIRTH's %d", got, bdSeq)
	}
	t.Logf("kill -9 of mkrt run → NDEATH at the subscriber: %v", d.at.Sub(killed))
	// The control program outlives its supervisor.
	if !alive(st.PID) {
		t.Fatalf("executive %d died with its supervisor", st.PID)
	}

	// The next run adopts it, whatever the crash left (socket, session).
	p.start()
	if st2 := p.status(); st2.State != supervisor.Running || st2.PID != st.PID {
		t.Fatalf("restart after a supervisor crash: %s, pid %d (want the adopted %d)", st2.State, st2.PID, st.PID)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}

// metric returns the named metric's long value, -1 when absent.
func metric(pl *sproto.Payload, name string) int64 {
	if m := metricByName(pl, name); m != nil {
		return int64(m.GetLongValue())
	}
	return -1
}

func metricByName(pl *sproto.Payload, name string) *sproto.Payload_Metric {
	for _, m := range pl.GetMetrics() {
		if m.GetName() == name {
			return m
		}
	}
	return nil
}

func cleanupAfterCrash(p *testPlant) {
	os.Remove(p.region)
	os.Remove(p.sock)
	for _, d := range cgroupDirs(p.name) {
		os.Remove(d)
	}
	exec.Command("ip", "netns", "del", "mkrt-"+p.name).Run()
}

// cgroupDirs are where the process backend puts the partition's cpuset.
func cgroupDirs(name string) []string {
	return []string{"/sys/fs/cgroup/cpuset/mkrt/" + name, "/sys/fs/cgroup/mkrt.slice/" + name}
}

func netnsList(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
