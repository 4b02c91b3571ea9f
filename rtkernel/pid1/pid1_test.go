package pid1

import (
	"encoding/binary"
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
	// A guest taking over has two regions, named by PCI address.
	sys["bus/pci/devices/0000:00:11.0/vendor"] = &fstest.MapFile{Data: []byte("0x1af4\n")}
	sys["bus/pci/devices/0000:00:11.0/device"] = &fstest.MapFile{Data: []byte("0x1110\n")}
	loc, err = FindShm(sys, "pci:0000:00:11.0")
	if err != nil || loc.BAR != "/sys/bus/pci/devices/0000:00:11.0/resource2" {
		t.Fatalf("pci: %+v, %v", loc, err)
	}
	if _, err := FindShm(sys, "pci:0000:00:02.0"); err == nil {
		t.Error("pci address of a device that is no ivshmem: want an error")
	}
	for _, bad := range []string{"phys:", "phys:0x10", "phys:zz,1", "phys:0x10,0", "0000:00:04.0", "pci:0000:00:05.0"} {
		if _, err := FindShm(sys, bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	delete(sys, "bus/pci/devices/0000:00:04.0/vendor")
	delete(sys, "bus/pci/devices/0000:00:11.0/vendor")
	if _, err := FindShm(sys, ""); err == nil {
		t.Error("no ivshmem device: want an error")
	}
}

// TestFindShmIvshmem2 finds mkrt's ivshmem-v2 device in a Jailhouse cell by
// its vendor capability, skipping one of another protocol.
func TestFindShmIvshmem2(t *testing.T) {
	cfg := make([]byte, 256)
	cfg[0x06] = 0x10
	cfg[0x34] = 0x40
	cfg[0x40], cfg[0x41] = 0x11, 0x50 // MSI-X, then the vendor capability
	cfg[0x50], cfg[0x51], cfg[0x52] = 0x09, 0x00, 0x20
	binary.LittleEndian.PutUint32(cfg[0x54:], 0x1000)     // state table
	binary.LittleEndian.PutUint64(cfg[0x58:], 0x400000)   // read-write section
	binary.LittleEndian.PutUint64(cfg[0x68:], 0x4a000000) // address
	sys := fstest.MapFS{
		"bus/pci/devices/0000:00:0d.0/vendor": {Data: []byte("0x110a\n")},
		"bus/pci/devices/0000:00:0d.0/device": {Data: []byte("0x4106\n")},
		"bus/pci/devices/0000:00:0d.0/class":  {Data: []byte("0xff0001\n")},
		"bus/pci/devices/0000:00:0e.0/vendor": {Data: []byte("0x110a\n")},
		"bus/pci/devices/0000:00:0e.0/device": {Data: []byte("0x4106\n")},
		"bus/pci/devices/0000:00:0e.0/class":  {Data: []byte("0xff4d4b\n")},
		"bus/pci/devices/0000:00:0e.0/config": {Data: cfg},
	}
	loc, err := FindShm(sys, "")
	if err != nil || loc.Phys != 0x4a001000 || loc.Size != 0x400000 || loc.BAR != "" || loc.Enable != "/sys/bus/pci/devices/0000:00:0e.0/enable" {
		t.Fatalf("FindShm = %+v, %v", loc, err)
	}
	cfg[0x52] = 0x18 // memory behind BAR 2
	if _, err := FindShm(sys, ""); err == nil {
		t.Error("capability without an address: want an error")
	}
	cfg[0x41] = 0x40 // MSI-X points at itself
	if _, err := FindShm(sys, ""); err == nil {
		t.Error("capability loop: want an error")
	}
}
