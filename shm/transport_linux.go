package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Open maps the region at loc read-write and shared.
//
// KindFile with Create makes the file with mode 0600 and sizes it; without
// Create the file must exist. KindPCI enables the device (writes 1 to its
// enable file when it reads 0) and maps the whole BAR. KindPhys maps Size
// bytes at Addr of Path (/dev/mem), page-aligning the mapping.
func Open(loc Location) (*Region, error) {
	switch loc.Kind {
	case KindFile, "":
		return openFile(loc)
	case KindPCI:
		return openPCI(loc)
	case KindPhys:
		return openPhys(loc)
	}
	return nil, fmt.Errorf("shm: open %s: %w: unknown transport %q", loc, ErrInvalid, loc.Kind)
}

func sysErr(call, path string, err error) error {
	return &SyscallError{Syscall: call, Path: path, Err: err}
}

func openFile(loc Location) (*Region, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if loc.Create {
		flags |= unix.O_CREAT
		if loc.Size <= 0 {
			return nil, fmt.Errorf("shm: create %s: %w: size %d", loc.Path, ErrInvalid, loc.Size)
		}
	}
	fd, err := unix.Open(loc.Path, flags, 0o600)
	if err != nil {
		return nil, sysErr("open", loc.Path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, sysErr("fstat", loc.Path, err)
	}
	size := st.Size
	if loc.Create {
		if err := unix.Fchmod(fd, 0o600); err != nil {
			return nil, sysErr("fchmod", loc.Path, err)
		}
		if size < loc.Size {
			if err := unix.Ftruncate(fd, loc.Size); err != nil {
				return nil, sysErr("ftruncate", loc.Path, err)
			}
			size = loc.Size
		}
	}
	if size < headerSize {
		return nil, fmt.Errorf("shm: open %s: %w", loc.Path, mismatch(ErrSize, "file size", fmt.Sprintf("at least %d", headerSize), size))
	}
	return mapFD(fd, loc.Path, 0, int(size), 0, loc.String())
}

func openPCI(loc Location) (*Region, error) {
	enable := filepath.Join(loc.Path, "enable")
	state, err := os.ReadFile(enable)
	if err != nil {
		return nil, fmt.Errorf("shm: PCI device %s: %w", loc.Path, err)
	}
	if string(bytes.TrimSpace(state)) == "0" {
		if err := os.WriteFile(enable, []byte("1"), 0); err != nil {
			return nil, fmt.Errorf("shm: enable PCI device %s: %w", loc.Path, err)
		}
	}
	res := filepath.Join(loc.Path, "resource"+strconv.Itoa(loc.BAR))
	fd, err := unix.Open(res, unix.O_RDWR|unix.O_SYNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, sysErr("open", res, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, sysErr("fstat", res, err)
	}
	if st.Size < headerSize {
		return nil, fmt.Errorf("shm: open %s: %w", res, mismatch(ErrSize, "BAR size", fmt.Sprintf("at least %d", headerSize), st.Size))
	}
	return mapFD(fd, res, 0, int(st.Size), 0, loc.String())
}

func openPhys(loc Location) (*Region, error) {
	path := loc.Path
	if path == "" {
		path = "/dev/mem"
	}
	if loc.Size < headerSize {
		return nil, fmt.Errorf("shm: open %s: %w", loc, mismatch(ErrSize, "reserved size", fmt.Sprintf("at least %d", headerSize), loc.Size))
	}
	page := uint64(os.Getpagesize())
	base := loc.Addr &^ (page - 1)
	delta := int(loc.Addr - base)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_SYNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, sysErr("open", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, sysErr("fstat", path, err)
	}
	// An ordinary file standing in for /dev/mem must cover the range, or a
	// touch past its end would fault.
	if st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) < loc.Addr+uint64(loc.Size) {
		return nil, fmt.Errorf("shm: open %s: %w", loc, mismatch(ErrSize, "file size", fmt.Sprintf("at least %d", loc.Addr+uint64(loc.Size)), st.Size))
	}
	return mapFD(fd, path, int64(base), delta+int(loc.Size), delta, loc.String())
}

// mapFD maps length bytes of fd at offset and returns a region of the bytes
// from skip on.
func mapFD(fd int, path string, offset int64, length, skip int, desc string) (*Region, error) {
	b, err := unix.Mmap(fd, offset, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, sysErr("mmap", path, err)
	}
	r := &Region{mem: b[skip:], desc: desc, unmap: func() error {
		if err := unix.Munmap(b); err != nil {
			return sysErr("munmap", path, err)
		}
		return nil
	}}
	if err := checkMemory(r.mem, desc); err != nil {
		return nil, errors.Join(err, r.Close())
	}
	return r, nil
}
