package jailhouse_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/jailhouse/jailhousetest"
)

func fakeBzImage(size int) []byte { return jailhousetest.BzImage(size) }

func TestLinuxImages(t *testing.T) {
	c := tankPlan(t).Cell
	kernel := fakeBzImage(8 << 20)
	initrd := bytes.Repeat([]byte{0xa5}, 3<<20)
	loader := []byte("linux-loader")
	imgs, err := jailhouse.LinuxImages(c, jailhouse.LinuxBoot{Loader: loader, Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 mkrt.shm=ivshmem"})
	if err != nil {
		t.Fatal(err)
	}
	kernelAddr := uint64(0x1000000 - 28*512)
	ramdisk := (kernelAddr + 5*uint64(len(kernel)) + 0xfff) &^ 0xfff
	wantTargets := []uint64{0xf0000, kernelAddr, ramdisk, 0xf5000}
	if len(imgs) != 4 {
		t.Fatalf("%d images", len(imgs))
	}
	for i, im := range imgs {
		if im.Target != wantTargets[i] {
			t.Errorf("image %d (%s) at %#x, want %#x", i, im.Name, im.Target, wantTargets[i])
		}
	}
	le := binary.LittleEndian
	p := imgs[3].Data
	if p[0x1e8] != 3 {
		t.Errorf("e820 entries %d", p[0x1e8])
	}
	e820 := func(i int) (uint64, uint64, uint32) {
		e := p[0x2d0+20*i:]
		return le.Uint64(e), le.Uint64(e[8:]), le.Uint32(e[16:])
	}
	for i, w := range []struct {
		addr, size uint64
		typ        uint32
	}{{0, 0x100000, 1}, {0x100000, 0x1000, 2}, {0x200000, 0x0ff00000, 1}} {
		if a, s, ty := e820(i); a != w.addr || s != w.size || ty != w.typ {
			t.Errorf("e820 %d: %#x %#x %d", i, a, s, ty)
		}
	}
	if string(p[0x202:0x206]) != "HdrS" || p[0x210] != 0xff || p[0x1f1] != 27 {
		t.Error("setup header not copied or type_of_loader not 0xff")
	}
	if le.Uint32(p[0x218:]) != uint32(ramdisk) || le.Uint32(p[0x21c:]) != uint32(len(initrd)) {
		t.Error("ramdisk fields")
	}
	if le.Uint64(p[0x250:]) != 0xf6000 || le.Uint32(p[0x228:]) != 0xf6000+16+284 || le.Uint64(p[0x230:]) != 0x1000000 {
		t.Errorf("setup_data %#x cmd_line_ptr %#x kernel_alignment %#x", le.Uint64(p[0x250:]), le.Uint32(p[0x228:]), le.Uint64(p[0x230:]))
	}
	sd := p[0x1000:]
	if le.Uint64(sd) != 0 || le.Uint32(sd[8:]) != 6 || le.Uint32(sd[12:]) != 284 || le.Uint16(sd[16:]) != 2 || le.Uint16(sd[18:]) != 1 {
		t.Errorf("setup_data header % x", sd[:20])
	}
	if sd[16+24] != 0 || le.Uint32(sd[16+280:]) != 1 {
		t.Errorf("standard_ioapic %d, uart flags %#x (want ttyS0 only)", sd[16+24], le.Uint32(sd[16+280:]))
	}
	if got := string(p[0x1000+16+284:]); got != "console=ttyS0 mkrt.shm=ivshmem\x00" {
		t.Errorf("cmdline %q", got)
	}
}

func TestLinuxImagesRefuses(t *testing.T) {
	cfg := loadExample(t, "tank-level.yaml")
	cfg.Partition.Memory = 32 << 20
	plan, err := jailhouse.Generate(cfg, jailhouse.Options{MemoryBase: tankBase})
	if err != nil {
		t.Fatal(err)
	}
	c := plan.Cell
	k := fakeBzImage(1 << 20)
	old := fakeBzImage(1 << 20)
	old[0x206] = 0x09
	for name, in := range map[string]jailhouse.LinuxBoot{
		"no loader":     {Kernel: k},
		"big loader":    {Loader: make([]byte, 0x5001), Kernel: k},
		"not bzImage":   {Loader: []byte{1}, Kernel: make([]byte, 4096)},
		"old protocol":  {Loader: []byte{1}, Kernel: old},
		"long cmdline":  {Loader: []byte{1}, Kernel: k, Cmdline: string(make([]byte, 3000))},
		"huge initrd":   {Loader: []byte{1}, Kernel: k, Initrd: make([]byte, 16<<20)},
		"short kernel":  {Loader: []byte{1}, Kernel: k[:0x100]},
		"header beyond": {Loader: []byte{1}, Kernel: append(bytes.Clone(k[:0x201]), 0xff)},
	} {
		if _, err := jailhouse.LinuxImages(c, in); !errors.Is(err, jailhouse.ErrKernel) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}
