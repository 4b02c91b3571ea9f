package vm

import (
	"strings"
	"testing"
)

// TestArgsRefuseOverlongNames: a tap name beyond IFNAMSIZ or a QMP socket
// path beyond sun_path makes QEMU fail far from the cause; Args refuses
// them and says which and the fix.
func TestArgsRefuseOverlongNames(t *testing.T) {
	long := "/var/lib/mkrt/" + strings.Repeat("n", 50) + "/mkrt-" + strings.Repeat("n", 50) + ".qmp"
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kernel: "/k", Initrd: "/i", NIC: NIC{Kind: "tap", Tap: "mkrt-0123456789a"}}, "1 to 15 bytes"},
		{Config{Kernel: "/k", Initrd: "/i", QMP: long}, "longer than a unix socket path may be"},
	} {
		if _, err := c.cfg.Args(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error saying %q", c.cfg, err, c.want)
		}
	}
	ok := Config{Kernel: "/k", Initrd: "/i", NIC: NIC{Kind: "tap", Tap: "mkrt-0123456789"}, QMP: "/var/lib/mkrt/tank/mkrt-tank.qmp"}
	if _, err := ok.Args(); err != nil {
		t.Errorf("a 15-byte tap and a short socket path: %v", err)
	}
}
