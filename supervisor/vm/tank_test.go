package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/sim"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
	"github.com/mkrt/mkrt/supervisor/vm/vmtest"
)

// guestPlant prepares the tank example for a guest: the guest's NIC gets
// guestCIDR and polls the simulator at simAddr.
func guestPlant(t *testing.T, simAddr, guestCIDR string) (*configs.Config, []byte, *tag.Table, *shm.Layout) {
	t.Helper()
	cfg, err := configs.Load("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Partition.Backend = configs.BackendVM
	cfg.Devices[0].Address = simAddr
	cfg.Devices[0].Timeout = configs.Duration(time.Second)
	cfg.Partition.NICs = []configs.NIC{{Interface: "field0", Address: guestCIDR}} // renamed inside the guest; the device binds to it by name
	// Software emulation: a slower cycle than the example's.
	cfg.Tasks[0].Period = configs.Duration(100 * time.Millisecond)
	text, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	guest, err := configs.LoadBytes("guest.yaml", text)
	if err != nil {
		t.Fatalf("the marshalled config does not load: %v\n%s", err, text)
	}
	tab, l := regionLayout(t, guest)
	return guest, text, tab, l
}

// regionLayout is the tag table and region layout both sides compute for
// cfg.
func regionLayout(t *testing.T, cfg *configs.Config) (*tag.Table, *shm.Layout) {
	t.Helper()
	tab, err := cfg.TagTable()
	if err != nil {
		t.Fatal(err)
	}
	l, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	return tab, l
}

func pow2(n int64) int64 {
	p := int64(1)
	for p < n {
		p <<= 1
	}
	return p
}

// hostRegion creates and formats the region file the guest's BAR maps.
func hostRegion(t *testing.T, l *shm.Layout) (path string, size int64, r *shm.Reader) {
	t.Helper()
	path = filepath.Join("/dev/shm", fmt.Sprintf("mkrt-test-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid()))
	size = pow2(l.Size())
	reg, err := shm.Open(shm.File(path, size, true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(); os.Remove(path) })
	if err := shm.Format(reg, l); err != nil {
		t.Fatal(err)
	}
	r, err = shm.AttachReader(reg, l, shm.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return path, size, r
}

// TestTankInPREEMPTRTGuest runs the tank control program as PID 1 of
// Debian's PREEMPT_RT kernel under QEMU TCG: it polls the tank simulator
// through its virtio NIC on a tap in a bridge, the simulator in a network
// namespace of the test's behind it (vmtest.Field), the host sees the
// heartbeat and the level through ivshmem, a setpoint written on the host
// is applied and acknowledged with its cycle, and a halt command powers
// the guest off.
func TestTankInPREEMPTRTGuest(t *testing.T) {
	kernel := vmtest.Kernel(t)
	field := vmtest.NewField(t, "10.213.7.0/24")
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()

	simAddr := field.Device() + ":15020"
	cfg, text, tab, l := guestPlant(t, simAddr, field.Addr(2))
	// The guest's watchdog as FromConfig arms it: fed while the loop runs,
	// disarmed (magic close) when the halt stops it.
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: []int{1}, Housekeeping: []int{0}, MaxCState: -1, Extra: "mkrt.watchdog=3"})
	initrd, _ := buildImage(t, kernel, cmdline, text)
	shmPath, shmSize, r := hostRegion(t, l)
	field.StartSim(t, ctx, sim.NewTank(), 15020, 10)

	console := supervisor.NewConsole(1 << 16) // all of it, beyond the partition's ring
	v := New(Options{Name: cfg.Metadata.Name, RunDir: t.TempDir(), Tap: vmtest.Tap(), Bridge: field.Bridge, HostCPUs: []int{1},
		ConsoleLog: console,
		QEMU:       Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Accel: "tcg", ShmPath: shmPath, ShmSize: shmSize, NIC: NIC{MAC: TapMAC(vmtest.Tap())}}})
	start := time.Now()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Stop(context.Background())

	level, _ := tab.Lookup("level")
	sp, _ := tab.Lookup("level_sp")
	var img shm.Image
	var firstCycle time.Duration
	for {
		hb := r.Heartbeat()
		if firstCycle == 0 && hb.Cycle > 0 {
			firstCycle = time.Since(start)
		}
		if err := r.Snapshot(ctx, &img); err != nil {
			t.Fatalf("snapshot: %v\nconsole:\n%s", err, strings.Join(v.Console(), "\n"))
		}
		if hb.State == wire.Running && img.Samples[level].Quality == tag.Good {
			t.Logf("QEMU start to first control cycle: %s; level %.3f m good after %s; rt %v %q", firstCycle, img.Samples[level].Value, time.Since(start), hb.RTMode, hb.RTReason)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no running heartbeat with a good level: heartbeat %+v, level %+v\nconsole:\n%s", hb, img.Samples[level], strings.Join(v.Console(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	res, err := r.Do(ctx, wire.Command{Kind: wire.WriteTag, Tag: sp, Value: wire.Number(1.8), Origin: wire.NewOrigin("test")})
	if err != nil || res.Status != wire.Applied || res.Cycle == 0 {
		t.Fatalf("setpoint write: %+v, %v", res, err)
	}
	t.Logf("setpoint acknowledged by the guest at cycle %d", res.Cycle)
	// The feeder arms the watchdog on the cycle counter's first move after
	// a baseline reading, up to two feeding intervals (2 × 750 ms) after
	// the first cycle: halt only once it says so, or a fast boot halts
	// before there is anything to disarm.
	for !strings.Contains(strings.Join(console.Lines(), "\n"), "watchdog armed") {
		if ctx.Err() != nil {
			t.Fatalf("the guest never armed its watchdog:\n%s", strings.Join(console.Lines(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := r.Submit(wire.Command{Kind: wire.Halt, Origin: wire.NewOrigin("test")}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	exit, err := v.Wait(wctx)
	if err != nil {
		t.Fatalf("guest did not power off after halt: %v\nconsole:\n%s", err, strings.Join(v.Console(), "\n"))
	}
	if exit.Code != 0 {
		t.Errorf("qemu exit %v, want 0 (guest powered off)", exit)
	}
	all := strings.Join(console.Lines(), "\n")
	if !strings.Contains(all, "control program stopped") {
		t.Errorf("console lacks the executive's clean stop:\n%s", all)
	}
	// The kernel says "watchdog did not stop!" on a close without the
	// magic character.
	if !strings.Contains(all, "watchdog armed") || strings.Contains(all, "did not stop") {
		t.Errorf("console: want the watchdog armed and disarmed on the clean stop:\n%s", all)
	}
}

// TestGuestFaultReachesHost boots a guest whose config names a NIC the VM
// does not have: mkrt-init fails to bring it up, writes the fault into the
// shared region and powers off.
func TestGuestFaultReachesHost(t *testing.T) {
	kernel := vmtest.Kernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	_, text, _, l := guestPlant(t, "10.213.8.1:15020", "10.213.8.2/30")
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: []int{1}, Housekeeping: []int{0}, MaxCState: -1})
	initrd, _ := buildImage(t, kernel, cmdline, text)
	shmPath, shmSize, r := hostRegion(t, l)
	v := New(Options{Name: "fault", RunDir: t.TempDir(), QEMU: Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Accel: "tcg", ShmPath: shmPath, ShmSize: shmSize}})
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Stop(context.Background())
	if _, err := v.Wait(ctx); err != nil {
		t.Fatalf("guest did not power off: %v", err)
	}
	hb := r.Heartbeat()
	evs := make([]wire.Event, 16)
	n := r.Events(evs)
	var fault string
	for _, e := range evs[:n] {
		if e.Kind == wire.Fault {
			fault = e.Text
		}
	}
	if hb.State != wire.Faulted || !strings.Contains(fault, "no Ethernet link") {
		t.Fatalf("host sees state %v, fault %q; want faulted with the NIC error\nconsole:\n%s", hb.State, fault, strings.Join(v.Console(), "\n"))
	}
	t.Logf("guest fault seen by the host: %s", fault)
}
