package shm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
)

// TestCreateRefusesForeignFile pre-creates the region file the way a local
// user would to keep access to the command ring, and checks that the host
// side refuses it and names the path, the reason and the fix.
func TestCreateRefusesForeignFile(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(10, 1, 1))
	size := l.Size()
	dir := t.TempDir()
	plant := func(name string, mode os.FileMode, size int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		path func(t *testing.T) string
		why  string
	}{
		{"other owner", func(t *testing.T) string {
			if os.Geteuid() != 0 {
				t.Skip("changing a file's owner needs root; run the shm tests as root to cover this case")
			}
			p := plant("other", 0o600, size)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return p
		}, "owned by uid 65534"},
		{"symlink", func(t *testing.T) string {
			target := plant("target", 0o600, size)
			p := filepath.Join(dir, "link")
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "symbolic link"},
		{"dangling symlink", func(t *testing.T) string {
			p := filepath.Join(dir, "dangling")
			if err := os.Symlink(filepath.Join(dir, "made-by-root"), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "symbolic link"},
		{"two links", func(t *testing.T) string {
			p := plant("linked", 0o600, size)
			if err := os.Link(p, filepath.Join(dir, "kept-by-someone")); err != nil {
				t.Fatal(err)
			}
			return p
		}, "2 hard links"},
		{"other-writable", func(t *testing.T) string { return plant("open", 0o666, size) }, "writable by group or others"},
		{"wrong size", func(t *testing.T) string { return plant("small", 0o600, size/2) }, "bytes, not the"},
		{"fifo", func(t *testing.T) string {
			p := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.path(t)
			r, err := shm.Open(shm.File(p, size, true))
			if err == nil {
				r.Close()
				t.Fatalf("%s reused", p)
			}
			if !errors.Is(err, shm.ErrUnsafe) || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "rm "+p) {
				t.Fatalf("error %q: want ErrUnsafe naming %q and the fix", err, c.why)
			}
			if _, err := os.Lstat(filepath.Join(dir, "made-by-root")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file was created through the symbolic link: %v", err)
			}
		})
	}
}

// TestCreateFileReserves fills a small tmpfs: a region larger than it is an
// error that names the size and the fix, not a SIGBUS when it is formatted,
// and nothing is left behind.
func TestCreateFileReserves(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; run the shm tests as root to cover a full /dev/shm")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): a full /dev/shm is not covered", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "mkrt-big")
	l := shmtest.Layout(t, shmtest.Params(10, 1, 1))
	r, err := shm.Open(shm.File(path, 4<<20, true))
	if err == nil {
		shm.Format(r, l) // the SIGBUS this test guards against
		r.Close()
		t.Fatal("a 4 MiB region was created on a 1 MiB tmpfs")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "4194304 bytes") || !strings.Contains(err.Error(), "shared_memory") {
		t.Fatalf("error %q: want ENOSPC with the size and the fix", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the half-made region file was left behind: %v", err)
	}
	// A region that fits is made and formatted.
	r, err = shm.Open(shm.File(path, 512<<10, true))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := shm.Format(r, l); err != nil {
		t.Fatal(err)
	}
}
