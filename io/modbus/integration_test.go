package modbus

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// Debian's python3-pymodbus is installed for the system interpreter; the
// python3 on PATH may be another build that cannot import it.
const systemPython = "/usr/bin/python3"

func needPymodbus(t testing.TB) {
	t.Helper()
	if err := exec.Command(systemPython, "-c", "import pymodbus.server").Run(); err != nil {
		t.Skipf("skipping: %s cannot import pymodbus (install python3-pymodbus): %v", systemPython, err)
	}
}

// freePort returns a port on 127.0.0.1 free at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPymodbus runs testdata/pyserver.py (optionally inside netns) and
// waits until it accepts connections. The process is killed at cleanup.
func startPymodbus(t testing.TB, netns, host string, port int, framer string, regs []uint16) *exec.Cmd {
	t.Helper()
	vals := make([]string, len(regs))
	for i, r := range regs {
		vals[i] = strconv.Itoa(int(r))
	}
	script, _ := filepath.Abs("testdata/pyserver.py")
	args := []string{systemPython, script, host, strconv.Itoa(port), framer, strings.Join(vals, ",")}
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := dialIn(netns, addr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("pymodbus server on %s did not come up: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialIn checks reachability; for a server inside netns the host reaches
// it over the veth pair, so a plain dial works.
func dialIn(_ string, addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, 200*time.Millisecond)
}

// knownRegisters are register contents written out by hand (not with this
// package's encoder) and the values they hold.
var knownRegisters = []uint16{
	0x449A, 0x522B, 0x522B, 0x449A, 0x9A44, 0x2B52, 0x2B52, 0x9A44, // float32 1234.5678 ABCD CDAB BADC DCBA
	0xF8A4, 0x32EB, 0x32EB, 0xF8A4, 0xA4F8, 0xEB32, 0xEB32, 0xA4F8, // int32 -123456789
	0xC009, 0x21FB, 0x5444, 0x2D18, 0x2D18, 0x5444, 0x21FB, 0xC009, // float64 -pi ABCD CDAB
	0x09C0, 0xFB21, 0x4454, 0x182D, 0x182D, 0x4454, 0xFB21, 0x09C0, // float64 -pi BADC DCBA
	0x3412, 0xFFFE, 0x4142, 0x4300, 0x0004, // uint16 BADC 0x1234, int16 -2, "ABC", bit 2
}

func knownTags() ([]configs.IOTag, map[string]float64) {
	var tags []configs.IOTag
	want := map[string]float64{}
	add := func(name string, addr int, typ tag.DataType, order configs.Order, v float64) {
		tags = append(tags, configs.IOTag{Name: name, Area: configs.AreaHolding, Address: addr, Type: typ, Order: order, Access: tag.Read})
		want[name] = v
	}
	for i, o := range orders {
		add("f32_"+string(o), 2*i, tag.Float32, o, float64(float32(1234.5678)))
		add("i32_"+string(o), 8+2*i, tag.Int32, o, -123456789)
		add("f64_"+string(o), 16+4*i, tag.Float64, o, -math.Pi)
	}
	add("u16_BADC", 32, tag.Uint16, configs.BADC, 0x1234)
	add("i16", 33, tag.Int16, "", -2)
	tags = append(tags, configs.IOTag{Name: "bit2", Area: configs.AreaInput, Address: 36, Bit: ptr(2)},
		configs.IOTag{Name: "txt", Area: configs.AreaInput, Address: 34, Type: tag.String, Length: 4})
	want["bit2"] = 1
	return tags, want
}

// checkKnown waits until the known tags are good and checks their values.
func checkKnown(t *testing.T, s *Scanner, tab *tag.Table, want map[string]float64) {
	t.Helper()
	names := []string{"txt"}
	for n := range want {
		names = append(names, n)
	}
	waitFor(t, s, tab, "known tags good", allGood(tab, names...))
	for n, v := range want {
		if got := sample(tab, n).Value; got != v {
			t.Errorf("%s = %v, want %v", n, got, v)
		}
	}
	if id, _ := tab.Lookup("txt"); tab.Text[id] != "ABC" {
		t.Errorf("txt = %q, want ABC", tab.Text[id])
	}
}

// TestPymodbusAllOrders polls an independent server (pymodbus) holding
// known registers, over Modbus TCP and over RTU frames on TCP.
func TestPymodbusAllOrders(t *testing.T) {
	needPymodbus(t)
	for _, c := range []struct {
		framer string
		driver configs.Driver
	}{{"socket", configs.DriverModbusTCP}, {"rtu", configs.DriverModbusRTUOverTCP}} {
		t.Run(string(c.driver), func(t *testing.T) {
			port := freePort(t)
			startPymodbus(t, "", "127.0.0.1", port, c.framer, knownRegisters)
			tags, want := knownTags()
			tags = append(tags, configs.IOTag{Name: "out", Area: configs.AreaHolding, Address: 50, Type: tag.Float32, Order: configs.CDAB},
				configs.IOTag{Name: "flag", Area: configs.AreaHolding, Address: 51 + 1, Bit: ptr(9)})
			dev := tcpDevice("py", fmt.Sprintf("127.0.0.1:%d", port), tags...)
			dev.Driver = c.driver
			tab := newTable(t, dev)
			s := startScanner(t, dev, tab)
			checkKnown(t, s, tab, want)
			// Writes: FC16 of a word-swapped float, FC22 of one bit; read back.
			for n, v := range map[string]float64{"out": -2.5, "flag": 1} {
				id, _ := tab.Lookup(n)
				tab.Samples[id] = tag.Sample{Value: v, Quality: tag.Good}
			}
			s.SetOutputs(tab.Samples, tab.Text)
			waitFor(t, s, tab, "outputs read back", func() bool {
				return sample(tab, "out").Value == -2.5 && sample(tab, "flag").Value == 1
			})
			if s.noMask {
				t.Errorf("pymodbus supports FC22 but the scanner fell back to read-modify-write")
			}
		})
	}
}

// TestDeadDeviceDoesNotStallOthers kills one device's server process while
// a second device keeps polling; the dead device's tags turn bad, the live
// device's stay good and keep being refreshed.
func TestDeadDeviceDoesNotStallOthers(t *testing.T) {
	needPymodbus(t)
	port := freePort(t)
	cmd := startPymodbus(t, "", "127.0.0.1", port, "socket", knownRegisters)
	_, liveAddr := serveBank(t, 16)
	dead := tcpDevice("dead", fmt.Sprintf("127.0.0.1:%d", port), configs.IOTag{Name: "a", Area: configs.AreaHolding, Address: 33, Type: tag.Int16})
	live := tcpDevice("live", liveAddr, configs.IOTag{Name: "b", Area: configs.AreaHolding, Address: 0})
	dead.Timeout = configs.Duration(300 * time.Millisecond)
	tab := newTable(t, dead, live)
	sd := startScanner(t, dead, tab)
	sl := startScanner(t, live, tab)
	both := func() { sd.Latest(tab.Samples, tab.Text); sl.Latest(tab.Samples, tab.Text) }
	waitFor(t, sd, tab, "both good", func() bool { both(); return allGood(tab, "a", "b")() })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	before := sl.Stats().Polls
	waitFor(t, sd, tab, "dead device bad", func() bool { both(); return sample(tab, "a").Quality == tag.Bad })
	t0 := sample(tab, "b").Time
	waitFor(t, sl, tab, "live device refreshed 20 more times", func() bool {
		return sl.Stats().Polls > before+20 && sample(tab, "b").Time > t0
	})
	if q := sample(tab, "b").Quality; q != tag.Good {
		t.Errorf("live device quality %v while its neighbour is dead", q)
	}
	t.Logf("dead: %v; live: %d polls, p99 scan %dus", sd.Stats().LastError, sl.Stats().Polls, sl.Stats().ScanTime.ValueAtQuantile(99))
}

// TestDedicatedNIC binds a device to one end of a veth pair whose other end
// is in a network namespace the test creates, with the server inside it.
// Setting the link down turns the device bad while a second device keeps
// polling; setting it up again brings it back.
func TestDedicatedNIC(t *testing.T) {
	needPymodbus(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace and a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs ip (iproute2)")
	}
	id := os.Getpid() % 10000
	ns, host, peer := fmt.Sprintf("mkrt-mbt-%d", id), fmt.Sprintf("mbh%d", id), fmt.Sprintf("mbn%d", id)
	subnet := 100 + id%100
	hostIP, nsIP := fmt.Sprintf("10.213.%d.1", subnet), fmt.Sprintf("10.213.%d.2", subnet)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	run("link", "set", peer, "netns", ns)
	run("addr", "add", hostIP+"/30", "dev", host)
	run("link", "set", host, "up")
	run("netns", "exec", ns, "ip", "addr", "add", nsIP+"/30", "dev", peer)
	run("netns", "exec", ns, "ip", "link", "set", peer, "up")
	run("netns", "exec", ns, "ip", "link", "set", "lo", "up")

	port := 15502
	startPymodbus(t, ns, nsIP, port, "socket", knownRegisters)
	_, liveAddr := serveBank(t, 16)
	nic := tcpDevice("nic", fmt.Sprintf("%s:%d", nsIP, port), configs.IOTag{Name: "a", Area: configs.AreaHolding, Address: 33, Type: tag.Int16})
	nic.Interface = host
	nic.Timeout = configs.Duration(200 * time.Millisecond)
	live := tcpDevice("live", liveAddr, configs.IOTag{Name: "b", Area: configs.AreaHolding, Address: 0})
	tab := newTable(t, nic, live)
	sn := startScanner(t, nic, tab, WithBackoff(50*time.Millisecond, 200*time.Millisecond))
	sl := startScanner(t, live, tab)
	both := func() { sn.Latest(tab.Samples, tab.Text); sl.Latest(tab.Samples, tab.Text) }
	waitFor(t, sn, tab, "device on the dedicated NIC good", func() bool { both(); return allGood(tab, "a", "b")() })
	if v := sample(tab, "a").Value; v != -2 {
		t.Errorf("a = %v, want -2", v)
	}
	run("link", "set", host, "down")
	before := sl.Stats().Polls
	waitFor(t, sn, tab, "bad after link down", func() bool {
		both()
		return sample(tab, "a").Quality == tag.Bad
	})
	waitFor(t, sl, tab, "live device keeps polling", func() bool { return sl.Stats().Polls > before+20 })
	if q := sample(tab, "b").Quality; q != tag.Good {
		t.Errorf("live device %v while the NIC is down", q)
	}
	run("link", "set", host, "up")
	waitFor(t, sn, tab, "good again after link up", allGood(tab, "a"))
	t.Logf("nic device: %+v", sn.Stats().LastError)
}
