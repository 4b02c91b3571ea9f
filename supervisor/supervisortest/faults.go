package supervisortest

import (
	"io/fs"
	"sync"
)

// Faults is a table of injected errors for fakes of file-like kernel
// interfaces (sysfs, procfs, kernfs), keyed by an operation ("read",
// "write", "mkdir", "rmdir", "readdir") and a path. The zero value is an
// empty table. Safe for concurrent use.
type Faults struct {
	mu sync.Mutex
	m  map[string]error
}

// Fail makes op on name fail with err (a syscall.Errno, usually); nil
// clears it.
func (f *Faults) Fail(op, name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.m, op+" "+name)
		return
	}
	if f.m == nil {
		f.m = map[string]error{}
	}
	f.m[op+" "+name] = err
}

// Check returns the error injected for op on name as a *fs.PathError, or
// nil.
func (f *Faults) Check(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.m[op+" "+name]; ok {
		return &fs.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}
