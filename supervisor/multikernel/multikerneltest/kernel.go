package multikerneltest

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/kexec/kexectest"
	"github.com/mkrt/mkrt/supervisor/multikernel"
)

// Root is where the kernfs is mounted.
const Root = "/sys/fs/multikernel"

// Instance statuses of the pinned interface. A halted instance goes back to
// ready: its resources stay reserved, its kernel image is spent.
const (
	StatusReady  = "ready"
	StatusLoaded = "loaded"
	StatusActive = "active"
	StatusFailed = "failed"
)

type instance struct {
	Instance
	status  string
	tx      int
	cmdline string
	halt    func() // from Boot, while the instance runs
}

// Kernel is a fake multikernel host kernel: a kernfs tree (through the
// supervisor/process.FS methods) and the system calls (through the
// embedded kexectest.Host, whose Recorder checks the argument layouts)
// sharing one state machine:
//
//   - mount(multikernel) at Root: as kexectest.Host mounts; umount2:
//     EBUSY while instances exist;
//   - device_tree: the baseline, written once (EBUSY while instances
//     exist, EINVAL when not a DTB with /resources);
//   - overlays/new: an instance-create overlay makes instances/<name> in
//     status ready and overlays/tx_<n>; EINVAL for a CPU, memory range or
//     device outside the baseline, EBUSY for one another instance holds or
//     an id in use, EEXIST for a name in use;
//   - rmdir overlays/tx_<n>: rolls the instance back; EBUSY unless it is
//     ready or failed;
//   - kexec_file_load with KEXEC_MULTIKERNEL|KEXEC_MK_ID(id): ready ->
//     loaded (ENOEXEC unless the kernel is ELF, EBUSY when not ready);
//     with KEXEC_FILE_UNLOAD: loaded -> ready (ENOENT when nothing is
//     loaded, EBUSY when active); EINVAL for an unknown id;
//   - reboot start: loaded -> active (EINVAL otherwise); halt: active ->
//     ready (ESRCH otherwise); force halt: loaded or active -> ready
//     (ESRCH otherwise); ESRCH for an unknown id.
//
// Fail injects an errno per file operation and path; Recorder.Fail per
// system call. Safe for concurrent use.
type Kernel struct {
	*kexectest.Host

	mu        sync.Mutex
	baseline  []byte
	pool      multikernel.Host
	instances map[string]*instance
	nextTx    int

	// Boot, when set, stands for the instance's kernel: a start calls it
	// with the instance's name and command line (outside the kernel's
	// lock), and a halt or force halt calls the function it returned.
	// Tests run the control program there, on the region the command line
	// names.
	Boot func(name, cmdline string) (halt func())
}

// New returns a kernel with the multikernel patch set (supported) or
// without, serving host files (path -> content, e.g. /proc/cpuinfo) and,
// when baseline is not nil, a baseline already written.
func New(supported bool, host map[string]string, baseline []byte) *Kernel {
	k := &Kernel{instances: map[string]*instance{}, nextTx: 1}
	k.Host = kexectest.NewHost("multikernel", Root, supported, host, k.syscall)
	if baseline != nil {
		if h, err := multikernel.ParseBaseline(baseline); err == nil {
			k.baseline, k.pool = baseline, h
		}
	}
	return k
}

// State is a summary of everything the kernel holds, to compare before and
// after a sequence.
func (k *Kernel) State() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return kexectest.Summary(k.Host, fmt.Sprintf("baseline=%d", len(k.baseline)), k.instances, func(n string, in *instance) string {
		return fmt.Sprintf("%s(id=%d tx=%d %s)", n, in.ID, in.tx, in.status)
	})
}

// Status returns an instance's status and the command line it was loaded
// with ("" when there is no such instance).
func (k *Kernel) Status(name string) (status, cmdline string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if in, ok := k.instances[name]; ok {
		return in.status, in.cmdline
	}
	return "", ""
}

// Exit ends an active instance's kernel on its own: StatusReady for a
// power-off, StatusFailed for a panic.
func (k *Kernel) Exit(name, status string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if in, ok := k.instances[name]; ok && in.status == StatusActive {
		in.status = status
	}
}

// rel returns name relative to Root and whether it is inside the mounted
// kernfs.
func (k *Kernel) rel(name string) (string, bool) {
	if name != Root && !strings.HasPrefix(name, Root+"/") || !k.Mounted() {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(name, Root), "/"), true
}

func enoent(op, name string) error { return &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT} }

// ReadFile reads a host file or a kernfs file.
func (k *Kernel) ReadFile(name string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok, err := k.HostFile(name); ok {
		return b, err
	}
	r, in := k.rel(name)
	if !in {
		return nil, enoent("open", name)
	}
	if r == "device_tree" {
		return append([]byte(nil), k.baseline...), nil
	}
	parts := strings.Split(r, "/")
	if len(parts) == 3 && parts[0] == "instances" {
		if i, ok := k.instances[parts[1]]; ok {
			switch parts[2] {
			case "status":
				return []byte(i.status + "\n"), nil
			case "id":
				return []byte(strconv.Itoa(i.ID) + "\n"), nil
			}
		}
	}
	return nil, enoent("open", name)
}

// WriteFile writes the baseline or an overlay.
func (k *Kernel) WriteFile(name string, data []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("write", name); err != nil {
		return err
	}
	r, in := k.rel(name)
	if !in {
		return enoent("open", name)
	}
	perr := func(e syscall.Errno) error { return &fs.PathError{Op: "write", Path: name, Err: e} }
	switch r {
	case "device_tree":
		if len(k.instances) > 0 {
			return perr(syscall.EBUSY)
		}
		h, err := multikernel.ParseBaseline(data)
		if err != nil {
			return perr(syscall.EINVAL)
		}
		k.baseline, k.pool = append([]byte(nil), data...), h
		return nil
	case "overlays/new":
		if e := k.create(data); e != 0 {
			return perr(e)
		}
		return nil
	}
	return &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
}

func (k *Kernel) create(data []byte) syscall.Errno {
	if k.baseline == nil {
		return syscall.EINVAL
	}
	o, err := ParseOverlay(data)
	if err != nil || o.Name == "" || o.ID < 0 || o.ID > 511 {
		return syscall.EINVAL
	}
	if _, ok := k.instances[o.Name]; ok {
		return syscall.EEXIST
	}
	labels := map[string]bool{}
	for _, l := range k.pool.Devices {
		labels[l] = true
	}
	for _, c := range o.CPUs {
		if !slices.Contains(k.pool.Pool, c) {
			return syscall.EINVAL
		}
	}
	for _, d := range o.Devices {
		if !labels[d] {
			return syscall.EINVAL
		}
	}
	if o.MemoryBytes == 0 || o.MemoryBase < k.pool.MemoryBase || o.MemoryBase+o.MemoryBytes > k.pool.MemoryBase+k.pool.MemoryBytes {
		return syscall.EINVAL
	}
	for _, other := range k.instances {
		if o.ID != 0 && other.ID == o.ID {
			return syscall.EBUSY
		}
		for _, c := range o.CPUs {
			if slices.Contains(other.CPUs, c) {
				return syscall.EBUSY
			}
		}
		for _, d := range o.Devices {
			if slices.Contains(other.Devices, d) {
				return syscall.EBUSY
			}
		}
		if o.MemoryBase < other.MemoryBase+other.MemoryBytes && other.MemoryBase < o.MemoryBase+o.MemoryBytes {
			return syscall.EBUSY
		}
	}
	if o.ID == 0 {
		for o.ID = 1; k.idUsed(o.ID); o.ID++ {
		}
	}
	k.instances[o.Name] = &instance{Instance: o, status: StatusReady, tx: k.nextTx}
	k.nextTx++
	return 0
}

func (k *Kernel) idUsed(id int) bool {
	for _, in := range k.instances {
		if in.ID == id {
			return true
		}
	}
	return false
}

// Mkdir fails: kernfs directories here are made by the kernel.
func (k *Kernel) Mkdir(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("mkdir", name); err != nil {
		return err
	}
	return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.EPERM}
}

// Rmdir of overlays/tx_<n> rolls its instance back.
func (k *Kernel) Rmdir(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("rmdir", name); err != nil {
		return err
	}
	r, in := k.rel(name)
	if !in {
		return enoent("rmdir", name)
	}
	for n, i := range k.instances {
		if r == fmt.Sprintf("overlays/tx_%d", i.tx) {
			if i.status != StatusReady && i.status != StatusFailed {
				return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.EBUSY}
			}
			delete(k.instances, n)
			return nil
		}
	}
	return enoent("rmdir", name)
}

// ReadDir lists overlays/ or instances/.
func (k *Kernel) ReadDir(name string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("readdir", name); err != nil {
		return nil, err
	}
	r, in := k.rel(name)
	if !in {
		return nil, enoent("open", name)
	}
	var out []string
	switch r {
	case "overlays":
		out = append(out, "new")
		for _, i := range k.instances {
			out = append(out, fmt.Sprintf("tx_%d", i.tx))
		}
	case "instances":
		for n := range k.instances {
			out = append(out, n)
		}
	case "":
		out = []string{"device_tree", "instances", "overlays"}
	default:
		return nil, enoent("open", name)
	}
	sort.Strings(out)
	return out, nil
}

func (k *Kernel) byID(id int) *instance {
	for _, in := range k.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

// syscall runs the state machine for a call the recorder accepted, then
// boots or halts the instance's stand-in kernel.
func (k *Kernel) syscall(c kexectest.Call) error {
	after, err := k.transition(c)
	if after != nil {
		after()
	}
	return err
}

// booted runs Boot for in and keeps its halt.
func (k *Kernel) booted(in *instance) func() {
	boot := k.Boot
	if boot == nil {
		return nil
	}
	name, cmdline := in.Name, in.cmdline
	return func() {
		halt := boot(name, cmdline)
		k.mu.Lock()
		in.halt = halt
		k.mu.Unlock()
	}
}

// halted takes in's halt to run.
func halted(in *instance) func() {
	h := in.halt
	in.halt = nil
	return h
}

func (k *Kernel) transition(c kexectest.Call) (func(), error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var after func()
	if ok, err := k.MountCall(c, len(k.instances) > 0); ok {
		return nil, err
	}
	switch c.Syscall {
	case "kexec_file_load":
		if c.Flags&kexec.Multikernel == 0 {
			return nil, nil // an ordinary kexec image; no instance involved
		}
		in := k.byID(c.ID())
		if in == nil {
			return nil, syscall.EINVAL
		}
		if c.Flags&kexec.FileUnload != 0 {
			switch in.status {
			case StatusLoaded:
				in.status, in.cmdline = StatusReady, ""
				return nil, nil
			case StatusActive:
				return nil, syscall.EBUSY
			}
			return nil, syscall.ENOENT
		}
		if !bytes.HasPrefix(c.KernelHead, []byte("\x7fELF")) {
			return nil, syscall.ENOEXEC
		}
		if in.status != StatusReady {
			return nil, syscall.EBUSY
		}
		in.status, in.cmdline = StatusLoaded, c.CmdlineString()
	case "reboot":
		in := k.byID(c.ID())
		if in == nil {
			return nil, syscall.ESRCH
		}
		switch c.Cmd {
		case kexec.CmdStart:
			if in.status != StatusLoaded {
				return nil, syscall.EINVAL
			}
			in.status = StatusActive
			after = k.booted(in)
		case kexec.CmdHalt:
			if in.status != StatusActive {
				return nil, syscall.ESRCH
			}
			in.status = StatusReady
			after = halted(in)
		case kexec.CmdForceHalt:
			if in.status != StatusActive && in.status != StatusLoaded {
				return nil, syscall.ESRCH
			}
			in.status = StatusReady
			after = halted(in)
		default:
			return nil, syscall.EINVAL
		}
	}
	return after, nil
}

// Path joins Root and elems.
func Path(elems ...string) string { return path.Join(append([]string{Root}, elems...)...) }
