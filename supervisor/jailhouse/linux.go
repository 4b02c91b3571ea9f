package jailhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Where jailhouse-cell-linux (x86) puts the loader and the boot parameters
// in the cell's guest-physical address space.
const (
	LoaderAddress = 0xf0000
	ParamsAddress = 0xf5000
	// SetupDataAddress is where the setup_data follows the zero page.
	SetupDataAddress = ParamsAddress + pageSize
)

// x86 boot protocol offsets (Documentation/arch/x86/boot.rst, zero-page.rst).
const (
	hdrBase           = 0x1f0
	hdrSetupSects     = 0x1f1
	hdrSyssize        = 0x1f4
	hdrJump           = 0x200
	hdrMagic          = 0x202
	hdrVersion        = 0x206
	hdrTypeOfLoader   = 0x210
	hdrRamdiskImage   = 0x218
	hdrRamdiskSize    = 0x21c
	hdrCmdLinePtr     = 0x228
	hdrKernelAlign    = 0x230
	hdrCmdlineSize    = 0x238
	hdrSetupData      = 0x250
	hdrPrefAddress    = 0x258
	zpE820Entries     = 0x1e8
	zpE820Table       = 0x2d0
	e820EntrySize     = 20
	e820MaxEntries    = 128
	e820RAM           = 1
	e820Reserved      = 2
	setupTypeJailhous = 6   // SETUP_JAILHOUSE
	setupDataLen      = 284 // struct jailhouse_setup_data v2: HH12x8xB255xI
	setupDataVersion  = 2
	setupDataCompat   = 1
	maxSetupCPUs      = 255
)

// ErrKernel is a kernel image Jailhouse's Linux loader cannot boot.
var ErrKernel = errors.New("jailhouse: kernel image")

// LinuxBoot is what a Linux cell boots: Jailhouse's linux-loader.bin (from
// the Jailhouse installation, usually /usr/local/libexec/jailhouse), a
// bzImage, an initramfs and the command line.
type LinuxBoot struct {
	Loader  []byte
	Kernel  []byte
	Initrd  []byte
	Cmdline string
}

// LinuxImages lays out a Linux cell on x86 as jailhouse-cell-linux of
// Jailhouse v0.12 does and returns the preload images for CELL_LOAD, in
// its order: linux-loader.bin at 0xf0000, the whole bzImage at its
// preferred address less the real-mode setup, the initramfs at the first
// page after five times the kernel's size, and the boot parameters at
// 0xf5000.
//
// The boot parameters are the zero page (the kernel's setup header with
// type_of_loader 0xff, ramdisk_image/size, cmd_line_ptr, kernel_alignment
// and setup_data set; an e820 map of the cell's RAM, comm region reserved),
// a SETUP_JAILHOUSE setup_data (version 2, compatible 1, standard_ioapic
// from the irqchips, the platform-UART flags from the PIO regions; the
// loader fills in the PM timer, CPU and clock fields from the comm region
// at boot), and the NUL-terminated command line.
//
// Not implemented: arm and arm64 cells (a device tree instead of a zero
// page), and EFI handover.
func LinuxImages(c *Cell, in LinuxBoot) ([]Image, error) {
	if len(in.Loader) == 0 {
		return nil, fmt.Errorf("%w: no linux-loader.bin (it is built with Jailhouse: inmates/tools/x86/linux-loader.bin)", ErrKernel)
	}
	if len(in.Loader) > ParamsAddress-LoaderAddress {
		return nil, fmt.Errorf("%w: linux-loader.bin is %d bytes, more than the %d between the loader and the parameters", ErrKernel, len(in.Loader), ParamsAddress-LoaderAddress)
	}
	k := in.Kernel
	if len(k) < hdrPrefAddress+8 || string(k[hdrMagic:hdrMagic+4]) != "HdrS" {
		return nil, fmt.Errorf("%w: not a bzImage (no HdrS setup header)", ErrKernel)
	}
	le := binary.LittleEndian
	if v := le.Uint16(k[hdrVersion:]); v < 0x020a {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d, need 2.10 or later (pref_address)", ErrKernel, v>>8, v&0xff)
	}
	setupSects := int(k[hdrSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	hdrEnd := 0x202 + int(k[hdrJump+1])
	if hdrEnd <= hdrPrefAddress+8 || hdrEnd > len(k) || hdrEnd > zpE820Table {
		return nil, fmt.Errorf("%w: setup header ends at %#x", ErrKernel, hdrEnd)
	}
	protOffs := uint64(setupSects+1) * 512
	pref := le.Uint64(k[hdrPrefAddress:])
	if pref < protOffs {
		return nil, fmt.Errorf("%w: preferred address %#x below the setup code", ErrKernel, pref)
	}
	kernelAddr := pref - protOffs
	var ramdiskAddr uint64
	if len(in.Initrd) > 0 {
		ramdiskAddr = (kernelAddr + 5*uint64(len(k)) + pageSize - 1) &^ (pageSize - 1)
	}
	if err := fitsRAM(c, kernelAddr, uint64(len(k)), "kernel"); err != nil {
		return nil, err
	}
	if len(in.Initrd) > 0 {
		if err := fitsRAM(c, ramdiskAddr, uint64(len(in.Initrd)), "initramfs"); err != nil {
			return nil, err
		}
		if ramdiskAddr+uint64(len(in.Initrd)) > 1<<32 {
			return nil, fmt.Errorf("%w: initramfs would end above 4 GiB", ErrKernel)
		}
	}
	if max := le.Uint32(k[hdrCmdlineSize:]); uint64(len(in.Cmdline)) > uint64(max) {
		return nil, fmt.Errorf("%w: command line is %d bytes, the kernel takes %d", ErrKernel, len(in.Cmdline), max)
	}

	zp := make([]byte, pageSize)
	copy(zp[hdrBase:hdrEnd], k[hdrBase:hdrEnd])
	zp[hdrTypeOfLoader] = 0xff
	le.PutUint32(zp[hdrRamdiskImage:], uint32(ramdiskAddr))
	le.PutUint32(zp[hdrRamdiskSize:], uint32(len(in.Initrd)))
	// jailhouse-cell-linux writes the preferred address as a 64-bit value
	// over kernel_alignment, relocatable_kernel, min_alignment and
	// xloadflags: the kernel then decompresses where it was linked.
	le.PutUint64(zp[hdrKernelAlign:], pref)
	le.PutUint64(zp[hdrSetupData:], SetupDataAddress)
	le.PutUint32(zp[hdrCmdLinePtr:], uint32(SetupDataAddress+16+setupDataLen))
	var n int
	for _, m := range c.Memory {
		typ := uint32(0)
		switch {
		case isRAM(m):
			typ = e820RAM
		case m.Flags&MemCommRegion != 0:
			typ = e820Reserved
		default:
			continue
		}
		if n == e820MaxEntries {
			return nil, fmt.Errorf("%w: more than %d RAM regions", ErrConfig, e820MaxEntries)
		}
		e := zp[zpE820Table+n*e820EntrySize:]
		le.PutUint64(e[0:], m.VirtStart)
		le.PutUint64(e[8:], m.Size)
		le.PutUint32(e[16:], typ)
		n++
	}
	zp[zpE820Entries] = byte(n)

	params := append(zp, SetupData(c)...)
	params = append(params, in.Cmdline...)
	params = append(params, 0)
	if ParamsAddress+len(params) > LowRAMSize {
		return nil, fmt.Errorf("%w: boot parameters of %d bytes do not fit below 1 MiB", ErrKernel, len(params))
	}
	imgs := []Image{
		{Name: "linux-loader.bin", Data: in.Loader, Target: LoaderAddress},
		{Name: "kernel", Data: k, Target: kernelAddr},
	}
	if len(in.Initrd) > 0 {
		imgs = append(imgs, Image{Name: "initramfs", Data: in.Initrd, Target: ramdiskAddr})
	}
	return append(imgs, Image{Name: "boot parameters", Data: params, Target: ParamsAddress}), nil
}

// SetupData is the SETUP_JAILHOUSE setup_data jailhouse-cell-linux writes:
// the setup_data header {u64 next; u32 type; u32 len} and struct
// jailhouse_setup_data v2 with only version, compatible_version,
// standard_ioapic and flags set.
func SetupData(c *Cell) []byte {
	b := make([]byte, 16+setupDataLen)
	le := binary.LittleEndian
	le.PutUint32(b[8:], setupTypeJailhous)
	le.PutUint32(b[12:], setupDataLen)
	d := b[16:]
	le.PutUint16(d[0:], setupDataVersion)
	le.PutUint16(d[2:], setupDataCompat)
	for _, q := range c.IRQChips {
		if q.Address == 0xfec00000 {
			d[24] = 1
		}
	}
	var flags uint32
	for _, r := range c.PIO {
		for i, uart := range []uint16{0x3f8, 0x2f8, 0x3e8, 0x2e8} {
			if r.Base == uart && r.Length == 8 {
				flags |= 1 << i
			}
		}
	}
	le.PutUint32(d[25+maxSetupCPUs:], flags)
	return b
}

// isRAM is jailhouse-cell-linux's test: read, write, execute and DMA, and
// none of I/O, comm region or root-shared.
func isRAM(m Memory) bool {
	const mask = MemRead | MemWrite | MemExecute | MemDMA | MemIO | MemCommRegion | MemRootShared
	return m.Flags&mask == MemRead|MemWrite|MemExecute|MemDMA
}

// fitsRAM checks that [addr, addr+size) lies in one loadable region.
func fitsRAM(c *Cell, addr, size uint64, what string) error {
	for _, m := range c.Memory {
		if m.Flags&MemLoadable != 0 && addr >= m.VirtStart && addr+size <= m.VirtStart+m.Size {
			return nil
		}
	}
	return fmt.Errorf("%w: the %s (%d bytes at %#x) does not fit in the cell's RAM (raise partition.memory)", ErrKernel, what, size, addr)
}
