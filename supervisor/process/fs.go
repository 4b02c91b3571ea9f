package process

import (
	"errors"
	"io/fs"
	"os"
	"sort"
	"syscall"
)

// FS is the seam through which every kernel-facing file (cgroupfs under
// /sys/fs/cgroup, /proc/irq, /sys/devices/system/cpu) is read and written,
// so host preparation is tested against a fake tree
// (supervisortest.FS). Errors are *fs.PathError carrying the operation,
// the path and the errno.
type FS interface {
	ReadFile(name string) ([]byte, error)
	// WriteFile writes data to an existing file (O_WRONLY|O_TRUNC), the way
	// kernel attribute files are written: one write(2).
	WriteFile(name string, data []byte) error
	Mkdir(name string) error
	// Rmdir removes a directory (cgroupfs removes a cgroup with its files).
	Rmdir(name string) error
	// ReadDir lists the names in a directory, sorted.
	ReadDir(name string) ([]string, error)
}

// OSFS is the real file system.
type OSFS struct{}

// ReadFile is os.ReadFile.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// WriteFile opens name write-only and writes data in one call.
func (OSFS) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// Mkdir makes a directory with mode 0755.
func (OSFS) Mkdir(name string) error { return os.Mkdir(name, 0o755) }

// Rmdir removes an empty directory (rmdir(2)).
func (OSFS) Rmdir(name string) error {
	if err := syscall.Rmdir(name); err != nil {
		return &fs.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// ReadDir lists the names in a directory.
func (OSFS) ReadDir(name string) ([]string, error) {
	es, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name()
	}
	sort.Strings(out)
	return out, nil
}

// permission reports whether err means "needs root".
func permission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS)
}
