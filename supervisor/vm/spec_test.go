package vm

import (
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
)

func TestTapName(t *testing.T) {
	for _, tc := range []struct {
		iface string
		n     int
		want  string
	}{
		{"mkrt-tank0", 1, "mkrt-tank0"},
		{"mkrt-tank0", 2, "mkrt-tank0-2"},
		{"mkrt-tank0", 13, "mkrt-tank0-13"},
		{"a-fifteen-chars", 2, "a-fifteen-cha-2"},
		{"a-fifteen-chars", 100, "a-fifteen-c-100"},
	} {
		if got := TapName(tc.iface, tc.n); got != tc.want || len(got) > configs.MaxIfName {
			t.Errorf("TapName(%q, %d) = %q, want %q", tc.iface, tc.n, got, tc.want)
		}
	}
	a, b := TapMAC("mkrt-tank0"), TapMAC("mkrt-tank0-2")
	if a == b || !strings.HasPrefix(a, "52:54:") || len(a) != 17 || TapMAC("mkrt-tank0") != a {
		t.Errorf("TapMAC: %s and %s; want two stable, different 52:54: addresses", a, b)
	}
}

func bridgedConfig(t *testing.T, nic string) *configs.Config {
	t.Helper()
	c, err := configs.LoadBytes("p.yaml", []byte("metadata: {name: tank}\npartition:\n  backend: vm\n  nics: ["+nic+"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A tap in a bridge belongs to its generation: a hand-over's new guest has
// its own tap, MAC and (with standby_address) IP address beside the
// running one; the generation after returns to address.
func TestDedicatedNICPerGeneration(t *testing.T) {
	cfg := bridgedConfig(t, "{interface: mkrt-tank0, address: 10.213.0.2/24, bridge: br-field, standby_address: 10.213.0.3/24}")
	for _, tc := range []struct {
		instance string
		gen      int
		tap      string
		param    string
	}{
		{"tank", 1, "mkrt-tank0", ""},
		{"tank-2", 2, "mkrt-tank0-2", "mkrt.address=10.213.0.3/24"},
		{"tank-3", 3, "mkrt-tank0-3", ""},
		{"tank-x", 1, "mkrt-tank0", ""},
	} {
		spec := supervisor.Spec{Config: cfg, Instance: tc.instance}
		if g := Generation(spec); g != tc.gen {
			t.Errorf("%s: generation %d, want %d", tc.instance, g, tc.gen)
		}
		nic, params, err := dedicatedNIC(spec)
		if err != nil {
			t.Fatal(err)
		}
		if nic.tap != tc.tap || nic.bridge != "br-field" || nic.hostAddress != "" || nic.qemu.MAC != TapMAC(tc.tap) || strings.Join(params, " ") != tc.param {
			t.Errorf("%s: %+v %q; want tap %s in br-field, params %q", tc.instance, nic, params, tc.tap, tc.param)
		}
	}
	routed := bridgedConfig(t, "{interface: mkrt-tank0, address: 10.213.0.2/30, host_address: 10.213.0.1/30}")
	nic, params, err := dedicatedNIC(supervisor.Spec{Config: routed, Instance: "tank-2"})
	if err != nil || nic.tap != "mkrt-tank0" || nic.hostAddress != "10.213.0.1/30" || nic.bridge != "" || params != nil {
		t.Errorf("routed tap: %+v %q %v", nic, params, err)
	}
	vfio := bridgedConfig(t, "{pci: \"0000:03:00.0\", address: 10.213.0.2/24}")
	if nic, _, err := dedicatedNIC(supervisor.Spec{Config: vfio}); err != nil || nic.qemu.Kind != "vfio" || nic.tap != "" {
		t.Errorf("vfio: %+v %v", nic, err)
	}
	bare := bridgedConfig(t, "{interface: eth1, address: 10.213.0.2/24}")
	if _, _, err := dedicatedNIC(supervisor.Spec{Config: bare}); err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("a tap with neither host_address nor bridge: %v", err)
	}
}

func TestGuestWatchdogTimeout(t *testing.T) {
	cfg := bridgedConfig(t, "")
	cfg.Tasks = []configs.Task{{Name: "fast", Period: configs.Duration(20 * time.Millisecond)}}
	if got := GuestWatchdog(cfg); got != MinGuestWatchdog {
		t.Errorf("20ms x 10: %v, want the floor %v", got, MinGuestWatchdog)
	}
	cfg.Tasks[0].Period = configs.Duration(250 * time.Millisecond)
	cfg.Watchdog.Heartbeat = 7
	if got := GuestWatchdog(cfg); got != 4*time.Second {
		t.Errorf("250ms x 7 x 2 = 3.5s: %v, want it rounded up to 4s", got)
	}
}
