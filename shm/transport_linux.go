package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
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
	if loc.Create {
		f, err := CreateFile(loc.Path, loc.Size)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return mapFD(int(f.Fd()), loc.Path, 0, int(loc.Size), 0, loc.String())
	}
	fd, err := unix.Open(loc.Path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, sysErr("open", loc.Path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, sysErr("fstat", loc.Path, err)
	}
	if st.Size < headerSize {
		return nil, fmt.Errorf("shm: open %s: %w", loc.Path, mismatch(ErrSize, "file size", fmt.Sprintf("at least %d", headerSize), st.Size))
	}
	return mapFD(fd, loc.Path, 0, int(st.Size), 0, loc.String())
}

// CreateFile creates the region file at path with mode 0600 and reserves
// size bytes of memory for it, so that a full /dev/shm is an error here
// rather than a SIGBUS when the region is first written.
//
// The file is created with O_EXCL|O_NOFOLLOW. An existing file is reused
// (a restarted supervisor must not wipe a running executive's region) only
// when nobody else can hold it: a regular file, not a symbolic link, owned
// by this process's effective uid, with one link, no group or other write
// permission, and exactly size bytes. Anything else is refused with
// ErrUnsafe: a local user who pre-created the file would keep write access
// to the command ring and the image.
func CreateFile(path string, size int64) (*os.File, error) {
	if size < headerSize {
		return nil, fmt.Errorf("shm: create %s: %w: size %d (at least %d)", path, ErrInvalid, size, headerSize)
	}
	created := true
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		created = false
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, unsafeFile(path, "is a symbolic link")
	}
	if err != nil {
		return nil, sysErr("open", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	fail := func(err error) (*os.File, error) {
		f.Close()
		if created {
			os.Remove(path)
		}
		return nil, err
	}
	if !created {
		if err := checkReuse(fd, path, size); err != nil {
			return fail(err)
		}
	}
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return fail(sysErr("fchmod", path, err))
	}
	if err := reserve(fd, path, size); err != nil {
		return fail(err)
	}
	return f, nil
}

// checkReuse refuses an existing region file that someone else could hold.
func checkReuse(fd int, path string, size int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return sysErr("fstat", path, err)
	}
	switch euid := uint32(os.Geteuid()); {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return unsafeFile(path, fmt.Sprintf("is not a regular file (mode %#o)", st.Mode&unix.S_IFMT))
	case st.Uid != euid:
		return unsafeFile(path, fmt.Sprintf("is owned by uid %d%s, not by uid %d that runs mkrt", st.Uid, userName(st.Uid), euid))
	case st.Nlink != 1:
		return unsafeFile(path, fmt.Sprintf("has %d hard links", st.Nlink))
	case st.Mode&0o022 != 0:
		return unsafeFile(path, fmt.Sprintf("is writable by group or others (mode %#o)", st.Mode&0o777))
	case st.Size != size:
		return unsafeFile(path, fmt.Sprintf("is %d bytes, not the %d this config's region needs (left by an earlier run of another config?)", st.Size, size))
	}
	return nil
}

func unsafeFile(path, why string) error {
	return fmt.Errorf("shm: region file %s %s: %w; remove it (rm %s) and start again", path, why, ErrUnsafe, path)
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return " (" + u.Username + ")"
	}
	return ""
}

// reserve allocates size bytes for the file (fallocate); a file system
// without fallocate gets ftruncate and no reservation. tmpfs gives up a
// long fallocate when a signal arrives (the Go runtime's preemption
// signals do), so EINTR is retried.
func reserve(fd int, path string, size int64) error {
	err := unix.Fallocate(fd, 0, 0, size)
	for errors.Is(err, unix.EINTR) {
		err = unix.Fallocate(fd, 0, 0, size)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = unix.Ftruncate(fd, size)
	}
	if errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("shm: reserve %d bytes (%.1f MiB) for %s: %w: the file system holding it (%s) is full or smaller than the region; free space there, enlarge it (mount -o remount,size=… %s) or lower shared_memory", size, float64(size)/(1<<20), path, sysErr("fallocate", path, err), filepath.Dir(path), filepath.Dir(path))
	}
	if err != nil {
		return sysErr("fallocate", path, err)
	}
	return nil
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
