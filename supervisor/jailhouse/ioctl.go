package jailhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// ioctl request encoding of asm-generic/ioctl.h (x86-64, arm64).
const (
	iocNone  = 0
	iocWrite = 1
)

func ioc(dir, typ, nr, size uint32) uint32 { return dir<<30 | size<<16 | typ<<8 | nr }

// Sizes of the argument structs of driver/jailhouse.h (v0.12).
const (
	CellCreateSize   = 16 // struct jailhouse_cell_create
	CellIDSize       = 40 // struct jailhouse_cell_id
	CellLoadSize     = 48 // struct jailhouse_cell_load, without image[]
	PreloadImageSize = 32 // struct jailhouse_preload_image
	// CellIDUnused is JAILHOUSE_CELL_ID_UNUSED: the cell is named, not numbered.
	CellIDUnused = -1
)

// The /dev/jailhouse ioctl requests of driver/jailhouse.h (v0.12).
var (
	IoctlEnable      = ioc(iocWrite, 0, 0, 8) // _IOW(0, 0, void *)
	IoctlDisable     = ioc(iocNone, 0, 1, 0)  // _IO(0, 1)
	IoctlCellCreate  = ioc(iocWrite, 0, 2, CellCreateSize)
	IoctlCellLoad    = ioc(iocWrite, 0, 3, CellLoadSize)
	IoctlCellStart   = ioc(iocWrite, 0, 4, CellIDSize)
	IoctlCellDestroy = ioc(iocWrite, 0, 5, CellIDSize)
)

// IoctlName names a request for logs and errors.
func IoctlName(req uint32) string {
	switch req {
	case IoctlEnable:
		return "JAILHOUSE_ENABLE"
	case IoctlDisable:
		return "JAILHOUSE_DISABLE"
	case IoctlCellCreate:
		return "JAILHOUSE_CELL_CREATE"
	case IoctlCellLoad:
		return "JAILHOUSE_CELL_LOAD"
	case IoctlCellStart:
		return "JAILHOUSE_CELL_START"
	case IoctlCellDestroy:
		return "JAILHOUSE_CELL_DESTROY"
	}
	return fmt.Sprintf("ioctl %#x", req)
}

// Pointer is a user-space address inside an ioctl argument: the device
// writes the address of Buf's first byte, little-endian, at Arg[Offset:].
type Pointer struct {
	Offset int
	Buf    []byte
}

// Request is one ioctl on /dev/jailhouse. Arg is the argument exactly as
// the driver copies it from user space, except that the address fields
// named by Pointers are zero until the device fills them in. For
// JAILHOUSE_ENABLE the argument is the system config itself; for
// JAILHOUSE_DISABLE it is empty (the ioctl gets 0).
type Request struct {
	Cmd      uint32
	Arg      []byte
	Pointers []Pointer
}

// Device is /dev/jailhouse. The real one is Open's; jailhousetest.Device
// is the fake that enforces the driver's state machine and records every
// request byte for byte.
type Device interface {
	Ioctl(r Request) error
	Close() error
}

// IoctlError is a failed ioctl: the request, the device path and the errno.
type IoctlError struct {
	Cmd   uint32
	Path  string
	Errno syscall.Errno
}

func (e *IoctlError) Error() string {
	return fmt.Sprintf("jailhouse: ioctl %s on %s: %v", IoctlName(e.Cmd), e.Path, e.Errno)
}

func (e *IoctlError) Unwrap() error { return e.Errno }

// DevicePath is the Jailhouse driver's device node.
const DevicePath = "/dev/jailhouse"

// ErrNoDriver is a host without /dev/jailhouse (jailhouse.ko not loaded).
var ErrNoDriver = errors.New("jailhouse: no /dev/jailhouse (load jailhouse.ko from a Jailhouse " + Release + " build)")

// CellID lays out struct jailhouse_cell_id {s32 id; u32 padding; char name[32]}.
func CellID(id int32, name string) []byte {
	b := make([]byte, CellIDSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(id))
	copy(b[8:8+NameMaxLen], name)
	return b
}

// CellCreate is the JAILHOUSE_CELL_CREATE request for a cell config:
// struct jailhouse_cell_create {u64 config_address; u32 config_size; u32 padding}.
func CellCreate(config []byte) Request {
	b := make([]byte, CellCreateSize)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(config)))
	return Request{Cmd: IoctlCellCreate, Arg: b, Pointers: []Pointer{{Offset: 0, Buf: config}}}
}

// Image is one preload image: bytes and where they go in the cell's
// guest-physical address space.
type Image struct {
	Name   string // for errors and logs
	Data   []byte
	Target uint64
}

// CellLoad is the JAILHOUSE_CELL_LOAD request: struct jailhouse_cell_load
// {struct jailhouse_cell_id cell_id; u32 num_preload_images; u32 padding;
// struct jailhouse_preload_image image[]} with each image
// {u64 source_address; u64 size; u64 target_address; u64 padding}.
func CellLoad(name string, images []Image) Request {
	b := make([]byte, CellLoadSize+len(images)*PreloadImageSize)
	copy(b, CellID(CellIDUnused, name))
	binary.LittleEndian.PutUint32(b[CellIDSize:], uint32(len(images)))
	r := Request{Cmd: IoctlCellLoad, Arg: b}
	for i, im := range images {
		off := CellLoadSize + i*PreloadImageSize
		binary.LittleEndian.PutUint64(b[off+8:], uint64(len(im.Data)))
		binary.LittleEndian.PutUint64(b[off+16:], im.Target)
		r.Pointers = append(r.Pointers, Pointer{Offset: off, Buf: im.Data})
	}
	return r
}

// CellStart and CellDestroy name the cell by name (id unused).
func CellStart(name string) Request {
	return Request{Cmd: IoctlCellStart, Arg: CellID(CellIDUnused, name)}
}

// CellDestroy is the JAILHOUSE_CELL_DESTROY request.
func CellDestroy(name string) Request {
	return Request{Cmd: IoctlCellDestroy, Arg: CellID(CellIDUnused, name)}
}

// Enable is the JAILHOUSE_ENABLE request with a root-cell system config
// (the "JHSYST" file jailhouse enable takes).
func Enable(system []byte) Request { return Request{Cmd: IoctlEnable, Arg: system} }

// Disable is the JAILHOUSE_DISABLE request.
func Disable() Request { return Request{Cmd: IoctlDisable} }
