package supervisortest

import (
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// FS is an in-memory /sys and /proc tree with the semantics the supervisor
// relies on: writes go only to existing files' directories (as in kernfs,
// where attribute files exist), Mkdir fails on an existing directory,
// Rmdir removes a directory with its files (as cgroupfs does) but fails
// with EBUSY while it has subdirectories. Fail injects errors per operation
// and path. It implements process.FS. Safe for concurrent use.
type FS struct {
	mu     sync.Mutex
	files  map[string]string
	dirs   map[string]bool
	faults Faults
	log    []string
}

// NewFS returns a tree holding files (path → content); their directories exist.
func NewFS(files map[string]string) *FS {
	f := &FS{files: map[string]string{}, dirs: map[string]bool{"/": true}}
	for p, c := range files {
		f.files[p] = c
		f.mkdirAll(path.Dir(p))
	}
	return f
}

func (f *FS) mkdirAll(d string) {
	for ; d != "/" && d != "."; d = path.Dir(d) {
		f.dirs[d] = true
	}
}

// Fail makes the operation op ("read", "write", "mkdir", "rmdir",
// "readdir") on name fail with err (a syscall.Errno, usually).
func (f *FS) Fail(op, name string, err error) { f.faults.Fail(op, name, err) }

func (f *FS) check(op, name string) error {
	f.log = append(f.log, op+" "+name)
	return f.faults.Check(op, name)
}

// Log returns every operation so far ("write /path").
func (f *FS) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// ReadFile returns a file's content.
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("read", name); err != nil {
		return nil, err
	}
	c, ok := f.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	}
	return []byte(c), nil
}

// WriteFile replaces a file's content; its directory must exist.
func (f *FS) WriteFile(name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("write", name); err != nil {
		return err
	}
	if !f.dirs[path.Dir(name)] {
		return &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	}
	f.files[name] = string(data)
	return nil
}

// Mkdir creates a directory.
func (f *FS) Mkdir(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("mkdir", name); err != nil {
		return err
	}
	if f.dirs[name] {
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.EEXIST}
	}
	if !f.dirs[path.Dir(name)] {
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOENT}
	}
	f.dirs[name] = true
	return nil
}

// Rmdir removes a directory and its files.
func (f *FS) Rmdir(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("rmdir", name); err != nil {
		return err
	}
	if !f.dirs[name] {
		return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.ENOENT}
	}
	for d := range f.dirs {
		if strings.HasPrefix(d, name+"/") {
			return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.EBUSY}
		}
	}
	for p := range f.files {
		if strings.HasPrefix(p, name+"/") {
			delete(f.files, p)
		}
	}
	delete(f.dirs, name)
	return nil
}

// ReadDir lists a directory's entries, sorted.
func (f *FS) ReadDir(name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("readdir", name); err != nil {
		return nil, err
	}
	if !f.dirs[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	}
	seen := map[string]bool{}
	for _, m := range []map[string]bool{f.dirs, keys(f.files)} {
		for p := range m {
			if path.Dir(p) == name && p != name {
				seen[path.Base(p)] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func keys(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// File returns a file's content and whether it exists.
func (f *FS) File(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.files[name]
	return c, ok
}

// Dir reports whether a directory exists.
func (f *FS) Dir(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirs[name]
}
