// Package jailhousetest holds a fake /dev/jailhouse for tests of the
// jailhouse backend: it enforces the Jailhouse v0.12 driver's state machine
// and argument checks, keeps the cells' state where the driver's sysfs
// shows it, and records every request byte for byte, with copies of the
// buffers the request pointed to.
package jailhousetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing/fstest"

	"github.com/mkrt/mkrt/supervisor/jailhouse"
)

// Call is one recorded request.
type Call struct {
	Cmd uint32
	// Arg is the argument as the caller built it (address fields zero).
	Arg []byte
	// Buffers are copies of the memory each pointer referred to.
	Buffers [][]byte
	Err     error
}

// Name is the request's name, "JAILHOUSE_CELL_CREATE".
func (c Call) Name() string { return jailhouse.IoctlName(c.Cmd) }

// Cell is a cell the fake driver holds.
type Cell struct {
	ID     int
	Config *jailhouse.Cell
	Raw    []byte
	// Images are the images of the last CELL_LOAD.
	Images []jailhouse.Image
	// State is what sysfs shows: "shut down", "running", "failed".
	State string
}

// Device is the fake /dev/jailhouse. The zero value is a host with the
// driver loaded and the hypervisor disabled; CPUs lists the host's CPUs
// (default 0-3).
type Device struct {
	// CPUs are the host's CPUs; a cell asking for another is refused.
	CPUs []int
	// Fail makes a request fail with the errno before the fake looks at it.
	Fail map[uint32]syscall.Errno
	// Console is what the hypervisor console shows (set it before the
	// test starts; Print adds to it while a partition reads it).
	Console string
	// Boot, when set, stands for the cell's Linux: a CELL_START calls it
	// with the cell's config (outside the device's lock). The stand-in
	// powers its cell off with SetState(name, "shut down").
	Boot func(c *jailhouse.Cell)

	mu      sync.Mutex
	enabled bool
	system  []byte
	cells   []*Cell
	nextID  int
	calls   []Call
	closed  int
}

// Ioctl checks and performs one request.
func (d *Device) Ioctl(r jailhouse.Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	call := Call{Cmd: r.Cmd, Arg: bytes.Clone(r.Arg)}
	for _, p := range r.Pointers {
		call.Buffers = append(call.Buffers, bytes.Clone(p.Buf))
	}
	err := d.do(r)
	if err != nil {
		call.Err = &jailhouse.IoctlError{Cmd: r.Cmd, Path: "fake:" + jailhouse.DevicePath, Errno: err.(syscall.Errno)}
	}
	d.calls = append(d.calls, call)
	if err == nil && r.Cmd == jailhouse.IoctlCellStart && d.Boot != nil {
		if c, _ := d.cellArg(r.Arg); c != nil {
			boot, cfg := d.Boot, c.Config
			d.mu.Unlock()
			boot(cfg)
			d.mu.Lock()
		}
	}
	return call.Err
}

func (d *Device) do(r jailhouse.Request) error {
	if e, ok := d.Fail[r.Cmd]; ok {
		return e
	}
	le := binary.LittleEndian
	switch r.Cmd {
	case jailhouse.IoctlEnable:
		if d.enabled {
			return syscall.EBUSY
		}
		if len(r.Pointers) != 0 || len(r.Arg) < 8 || string(r.Arg[:6]) != "JHSYST" {
			return syscall.EINVAL
		}
		if le.Uint16(r.Arg[6:]) != jailhouse.Revision {
			return syscall.EINVAL
		}
		d.enabled, d.system = true, bytes.Clone(r.Arg)
		return nil
	case jailhouse.IoctlDisable:
		if len(r.Arg) != 0 || len(r.Pointers) != 0 {
			return syscall.EINVAL
		}
		if !d.enabled {
			return syscall.EINVAL
		}
		// The driver tears down every non-root cell with the hypervisor.
		d.enabled, d.cells = false, nil
		return nil
	case jailhouse.IoctlCellCreate:
		if len(r.Arg) != jailhouse.CellCreateSize || len(r.Pointers) != 1 || r.Pointers[0].Offset != 0 {
			return syscall.EINVAL
		}
		if !allZero(r.Arg[0:8]) || !allZero(r.Arg[12:16]) {
			return syscall.EINVAL // address field set by the caller, or padding not zero
		}
		buf := r.Pointers[0].Buf
		if int(le.Uint32(r.Arg[8:])) != len(buf) {
			return syscall.EFAULT
		}
		if !d.enabled {
			return syscall.EINVAL
		}
		c, err := jailhouse.Decode(buf)
		if err != nil {
			return syscall.EINVAL
		}
		if d.find(-1, c.Name) != nil {
			return syscall.EEXIST
		}
		cpus := d.CPUs
		if cpus == nil {
			cpus = []int{0, 1, 2, 3}
		}
		for _, cpu := range c.CPUs {
			if !slices.Contains(cpus, cpu) {
				return syscall.EINVAL
			}
			for _, o := range d.cells {
				if slices.Contains(o.Config.CPUs, cpu) {
					return syscall.EBUSY
				}
			}
		}
		d.nextID++
		d.cells = append(d.cells, &Cell{ID: d.nextID, Config: c, Raw: bytes.Clone(buf), State: "shut down"})
		return nil
	case jailhouse.IoctlCellLoad:
		if len(r.Arg) < jailhouse.CellLoadSize {
			return syscall.EINVAL
		}
		n := int(le.Uint32(r.Arg[jailhouse.CellIDSize:]))
		if len(r.Arg) != jailhouse.CellLoadSize+n*jailhouse.PreloadImageSize || len(r.Pointers) != n || !allZero(r.Arg[44:48]) {
			return syscall.EINVAL
		}
		c, err := d.cellArg(r.Arg[:jailhouse.CellIDSize])
		if err != nil {
			return err
		}
		var imgs []jailhouse.Image
		for i, p := range r.Pointers {
			off := jailhouse.CellLoadSize + i*jailhouse.PreloadImageSize
			im := r.Arg[off : off+jailhouse.PreloadImageSize]
			if p.Offset != off || !allZero(im[0:8]) || !allZero(im[24:32]) {
				return syscall.EINVAL
			}
			size, target := le.Uint64(im[8:]), le.Uint64(im[16:])
			if size != uint64(len(p.Buf)) {
				return syscall.EFAULT
			}
			if !loadable(c.Config, target, size) {
				return syscall.EINVAL
			}
			imgs = append(imgs, jailhouse.Image{Data: bytes.Clone(p.Buf), Target: target})
		}
		// Loading stops a running cell first, as the driver does.
		c.Images, c.State = imgs, "shut down"
		return nil
	case jailhouse.IoctlCellStart, jailhouse.IoctlCellDestroy:
		if len(r.Arg) != jailhouse.CellIDSize || len(r.Pointers) != 0 {
			return syscall.EINVAL
		}
		c, err := d.cellArg(r.Arg)
		if err != nil {
			return err
		}
		if r.Cmd == jailhouse.IoctlCellDestroy {
			d.cells = slices.DeleteFunc(d.cells, func(x *Cell) bool { return x == c })
			return nil
		}
		// The real driver would start an unloaded cell at its reset vector;
		// the fake refuses so that a start before load is caught.
		if c.Images == nil {
			return syscall.EINVAL
		}
		c.State = "running"
		return nil
	}
	return syscall.ENOTTY
}

func (d *Device) cellArg(b []byte) (*Cell, error) {
	le := binary.LittleEndian
	id := int32(le.Uint32(b[0:]))
	if !allZero(b[4:8]) || b[jailhouse.CellIDSize-1] != 0 {
		return nil, syscall.EINVAL
	}
	if !d.enabled {
		return nil, syscall.EINVAL
	}
	name := string(b[8:])
	if i := bytes.IndexByte(b[8:], 0); i >= 0 {
		name = string(b[8 : 8+i])
	}
	c := d.find(int(id), name)
	if c == nil {
		return nil, syscall.ENOENT
	}
	return c, nil
}

func (d *Device) find(id int, name string) *Cell {
	for _, c := range d.cells {
		if (id == jailhouse.CellIDUnused && c.Config.Name == name) || (id >= 0 && c.ID == id) {
			return c
		}
	}
	return nil
}

func loadable(c *jailhouse.Cell, target, size uint64) bool {
	for _, m := range c.Memory {
		if m.Flags&jailhouse.MemLoadable != 0 && target >= m.VirtStart && target+size <= m.VirtStart+m.Size {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Close counts closes.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed++
	return nil
}

// Closed is how often Close was called.
func (d *Device) Closed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Calls returns the recorded requests in order.
func (d *Device) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// Names returns the recorded requests' names, failed ones marked "!".
func (d *Device) Names() []string {
	var n []string
	for _, c := range d.Calls() {
		s := c.Name()
		if c.Err != nil {
			s += "!"
		}
		n = append(n, s)
	}
	return n
}

// Enabled reports whether the hypervisor is enabled.
func (d *Device) Enabled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.enabled
}

// SetEnabled enables the hypervisor as if jailhouse enable had run before.
func (d *Device) SetEnabled(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.enabled = on
}

// Cell returns a copy of the named cell, or nil.
func (d *Device) Cell(name string) *Cell {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.find(jailhouse.CellIDUnused, name)
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}

// ConsoleSize is how much the fake hypervisor console keeps, as the real
// one's page-sized ring: Print drops the oldest bytes beyond it.
const ConsoleSize = 2048

// Print writes s to the hypervisor console, as a cell with a virtual
// console (or the hypervisor) does.
func (d *Device) Print(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Console += s
	if n := len(d.Console); n > ConsoleSize {
		d.Console = d.Console[n-ConsoleSize:]
	}
}

// SetState changes a cell's state as the hypervisor would ("shut down"
// when Linux in the cell powers off, "failed" on a fault).
func (d *Device) SetState(name, state string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.find(jailhouse.CellIDUnused, name)
	if c == nil {
		return fmt.Errorf("jailhousetest: no cell %q", name)
	}
	c.State = state
	return nil
}

// Sysfs is the driver's sysfs as of each Open (rooted at /sys):
// devices/jailhouse/enabled, devices/jailhouse/console and
// devices/jailhouse/cells/<id>/{name,state,cpus_assigned}.
func (d *Device) Sysfs() fs.FS { return sysfs{d} }

type sysfs struct{ d *Device }

func (s sysfs) Open(name string) (fs.File, error) {
	d := s.d
	d.mu.Lock()
	m := fstest.MapFS{}
	en := "0\n"
	if d.enabled {
		en = "1\n"
	}
	m["devices/jailhouse/enabled"] = &fstest.MapFile{Data: []byte(en)}
	m["devices/jailhouse/console"] = &fstest.MapFile{Data: []byte(d.Console)}
	for _, c := range d.cells {
		dir := "devices/jailhouse/cells/" + strconv.Itoa(c.ID) + "/"
		m[dir+"name"] = &fstest.MapFile{Data: []byte(c.Config.Name + "\n")}
		m[dir+"state"] = &fstest.MapFile{Data: []byte(c.State + "\n")}
		var cpus []string
		for _, x := range c.Config.CPUs {
			cpus = append(cpus, strconv.Itoa(x))
		}
		m[dir+"cpus_assigned"] = &fstest.MapFile{Data: []byte(strings.Join(cpus, ",") + "\n")}
	}
	d.mu.Unlock()
	return m.Open(name)
}

// SystemConfig is a minimal root-cell system config header the fake accepts
// for JAILHOUSE_ENABLE: "JHSYST", the pinned revision, and zeros.
func SystemConfig() []byte {
	b := make([]byte, 64)
	copy(b, "JHSYST")
	binary.LittleEndian.PutUint16(b[6:], jailhouse.Revision)
	return b
}

// BzImage is a bzImage header as boot protocol 2.15 lays it out, size
// bytes long: 27 setup sectors, preferred address 16 MiB, command lines up
// to 2047 bytes. Enough for the cell loader to place it.
func BzImage(size int) []byte {
	k := make([]byte, size)
	le := binary.LittleEndian
	k[0x1f1] = 27
	le.PutUint32(k[0x1f4:], uint32(size/16))
	k[0x200], k[0x201] = 0xeb, 0x6a // jmp; header ends at 0x202+0x6a
	copy(k[0x202:], "HdrS")
	le.PutUint16(k[0x206:], 0x020f)
	le.PutUint32(k[0x230:], 0x200000) // kernel_alignment
	k[0x234] = 1                      // relocatable_kernel
	le.PutUint32(k[0x238:], 2047)     // cmdline_size
	le.PutUint64(k[0x258:], 0x1000000)
	return k
}
