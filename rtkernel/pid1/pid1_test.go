package pid1

import (
	"testing"
	"testing/fstest"
)

func TestParseCmdline(t *testing.T) {
	p := ParseCmdline("console=ttyS0 mkrt.shm=phys:0x1000,0x2000 quiet mkrt.mode=probe mkrt.flag")
	if p["shm"] != "phys:0x1000,0x2000" || p["mode"] != "probe" || len(p) != 3 {
		t.Fatalf("got %v", p)
	}
	if _, ok := p["flag"]; !ok {
		t.Error("a bare mkrt.flag must be present with an empty value")
	}
}

func TestFindShm(t *testing.T) {
	sys := fstest.MapFS{
		"bus/pci/devices/0000:00:02.0/vendor": {Data: []byte("0x8086\n")},
		"bus/pci/devices/0000:00:02.0/device": {Data: []byte("0x100e\n")},
		"bus/pci/devices/0000:00:04.0/vendor": {Data: []byte("0x1af4\n")},
		"bus/pci/devices/0000:00:04.0/device": {Data: []byte("0x1110\n")},
	}
	loc, err := FindShm(sys, "")
	if err != nil || loc.BAR != "/sys/bus/pci/devices/0000:00:04.0/resource2" || loc.Enable != "/sys/bus/pci/devices/0000:00:04.0/enable" {
		t.Fatalf("FindShm = %+v, %v", loc, err)
	}
	loc, err = FindShm(sys, "phys:0x80000000,0x400000")
	if err != nil || loc.Phys != 0x80000000 || loc.Size != 0x400000 || loc.String() != "phys:0x80000000,0x400000" {
		t.Fatalf("phys: %+v, %v", loc, err)
	}
	for _, bad := range []string{"phys:", "phys:0x10", "phys:zz,1", "phys:0x10,0"} {
		if _, err := FindShm(sys, bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	delete(sys, "bus/pci/devices/0000:00:04.0/vendor")
	if _, err := FindShm(sys, ""); err == nil {
		t.Error("no ivshmem device: want an error")
	}
}
