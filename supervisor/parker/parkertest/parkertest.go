// Package parkertest is a fake of the Parker RFC's kernel interface for
// tests: the parker kernfs (through the supervisor/process.FS methods) and
// the system calls (through an embedded kexectest.Recorder) sharing one
// state machine, with the semantics of the RFC's arch/x86/parker/kernfs.c
// (lore 20250923153146.365015-4-fam.zheng@bytedance.com). Nothing here
// needs privileges.
package parkertest

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/kexec/kexectest"
)

// Root is where the kernfs is mounted.
const Root = "/sys/fs/parker"

type kernel struct {
	id      int
	cpus    []int
	memory  uint64
	base    uint64
	devices []string
	online  bool
	control uint64
}

// Kernel is the fake boot kernel, its system calls through the embedded
// kexectest.Host:
//
//   - mount(parker) at Root: as kexectest.Host mounts (the RFC allows one
//     mount);
//   - mkdir Root/<name>: a kernel entry with id, control_structure, cpus,
//     memory, bind, unbind, online and devices/; EEXIST, EINVAL for a name
//     with a newline or a nested directory;
//   - cpus: a cpulist; EINVAL when a CPU belongs to another entry or the
//     host has no such CPU;
//   - memory: a size (memparse: K, M, G suffixes); EINVAL for 0, trailing
//     junk or an entry without cpus; ENOMEM beyond the CMA pool; reading
//     it gives "<size>@0x<base>" (EINVAL before a write);
//   - bind: a PCI name; ENODEV when unknown, EBUSY when claimed;
//   - online: writing starts the loaded kexec image (EINVAL without one:
//     the RFC would spin for ever); reading gives 0 or 1;
//   - rmdir: EBUSY while online, else CPUs, memory and devices return;
//   - kexec_file_load: flags 0 or KEXEC_FILE_NO_INITRAMFS load the one
//     ordinary image (EINVAL for the multikernel bits), KEXEC_FILE_UNLOAD
//     drops it (ENOENT when none).
type Kernel struct {
	*kexectest.Host

	mu       sync.Mutex
	hostCPUs int
	cma      uint64
	pci      []string
	kernels  map[string]*kernel
	nextID   int
	image    string // the loaded image's command line, "" when none
	loaded   bool

	// Boot, when set, stands for the secondary kernel: writing online
	// calls it with the entry's name and the loaded image's command line
	// (outside the kernel's lock). Parker cannot halt a secondary; the
	// stand-in goes offline on its own, through Offline.
	Boot func(name, cmdline string)
}

// New returns a boot kernel with (supported) or without Parker, hostCPUs
// CPUs, a CMA pool of cma bytes, the PCI devices pci, and host files.
func New(supported bool, hostCPUs int, cma uint64, pci []string, host map[string]string) *Kernel {
	k := &Kernel{hostCPUs: hostCPUs, cma: cma, pci: pci, kernels: map[string]*kernel{}, nextID: 1}
	k.Host = kexectest.NewHost("parker", Root, supported, host, k.syscall)
	return k
}

// State summarises what the kernel holds.
func (k *Kernel) State() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return kexectest.Summary(k.Host, fmt.Sprintf("loaded=%v", k.loaded), k.kernels, func(n string, e *kernel) string {
		return fmt.Sprintf("%s(cpus=%v mem=%d devs=%v online=%v)", n, e.cpus, e.memory, e.devices, e.online)
	})
}

// Loaded returns the loaded image's command line.
func (k *Kernel) Loaded() (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.image, k.loaded
}

// Offline makes an online secondary go offline (it ended on its own).
func (k *Kernel) Offline(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.kernels[name]; ok {
		e.online = false
	}
}

// ControlStructure is the physical address the fake gives entry id.
func ControlStructure(id int) uint64 { return 0x7f000000 + uint64(id)*0x1000 }

func perr(op, name string, e syscall.Errno) error { return &fs.PathError{Op: op, Path: name, Err: e} }

func (k *Kernel) entry(name string) (*kernel, string, bool) {
	rest, ok := strings.CutPrefix(name, Root+"/")
	if !ok || !k.Mounted() {
		return nil, "", false
	}
	dir, file, _ := strings.Cut(rest, "/")
	e, ok := k.kernels[dir]
	return e, file, ok
}

// ReadFile reads a host file or an entry's attribute.
func (k *Kernel) ReadFile(name string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok, err := k.HostFile(name); ok {
		return b, err
	}
	e, file, ok := k.entry(name)
	if !ok {
		return nil, perr("open", name, syscall.ENOENT)
	}
	switch file {
	case "id":
		return []byte(fmt.Sprintf("%d\n", e.id)), nil
	case "control_structure":
		return []byte(fmt.Sprintf("0x%x\n", e.control)), nil
	case "cpus":
		return []byte(configs.CPUList(e.cpus).String() + "\n"), nil
	case "memory":
		if e.memory == 0 {
			return nil, perr("read", name, syscall.EINVAL)
		}
		return []byte(fmt.Sprintf("%d@0x%x\n", e.memory, e.base)), nil
	case "online":
		if e.online {
			return []byte("1\n"), nil
		}
		return []byte("0\n"), nil
	}
	return nil, perr("open", name, syscall.ENOENT)
}

func memparse(s string) (uint64, bool) {
	s = strings.TrimSuffix(s, "\n")
	mult := uint64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult, s = 1<<10, s[:n-1]
		case 'M', 'm':
			mult, s = 1<<20, s[:n-1]
		case 'G', 'g':
			mult, s = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseUint(s, 0, 64)
	return v * mult, err == nil
}

// WriteFile writes an entry's attribute; writing online boots the stand-in.
func (k *Kernel) WriteFile(name string, data []byte) error {
	boot, err := k.write(name, data)
	if boot != nil {
		boot()
	}
	return err
}

func (k *Kernel) write(name string, data []byte) (func(), error) {
	if err := k.writeLocked(name, data); err != nil {
		return nil, err
	}
	k.mu.Lock()
	_, file, ok := k.entry(name)
	boot, cmdline := k.Boot, k.image
	k.mu.Unlock()
	if !ok || file != "online" || boot == nil {
		return nil, nil
	}
	entry := path.Base(path.Dir(name))
	return func() { boot(entry, cmdline) }, nil
}

func (k *Kernel) writeLocked(name string, data []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("write", name); err != nil {
		return err
	}
	e, file, ok := k.entry(name)
	if !ok {
		return perr("open", name, syscall.ENOENT)
	}
	s := string(data)
	switch file {
	case "cpus":
		cpus, err := configs.ParseCPUList(strings.TrimSpace(s))
		if err != nil {
			return perr("write", name, syscall.EINVAL)
		}
		for _, c := range cpus {
			if c >= k.hostCPUs {
				return perr("write", name, syscall.EINVAL)
			}
			for _, o := range k.kernels {
				if o != e && slices.Contains(o.cpus, c) {
					return perr("write", name, syscall.EINVAL)
				}
			}
		}
		e.cpus = cpus
	case "memory":
		size, ok := memparse(s)
		if !ok || size == 0 || len(e.cpus) == 0 {
			return perr("write", name, syscall.EINVAL)
		}
		used := uint64(0)
		for _, o := range k.kernels {
			if o != e {
				used += o.memory
			}
		}
		if used+size > k.cma {
			e.memory = 0
			return perr("write", name, syscall.ENOMEM)
		}
		e.memory, e.base = size, 0x100000000+used
	case "bind":
		bdf := strings.TrimSpace(s)
		if !slices.Contains(k.pci, bdf) {
			return perr("write", name, syscall.ENODEV)
		}
		for _, o := range k.kernels {
			if slices.Contains(o.devices, bdf) {
				return perr("write", name, syscall.EBUSY)
			}
		}
		e.devices = append(e.devices, bdf)
	case "online":
		if !k.loaded || len(e.cpus) == 0 {
			return perr("write", name, syscall.EINVAL)
		}
		e.online = true
	default:
		return perr("open", name, syscall.EACCES)
	}
	return nil
}

// Mkdir makes a kernel entry.
func (k *Kernel) Mkdir(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("mkdir", name); err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(name, Root+"/")
	if !ok || !k.Mounted() {
		return perr("mkdir", name, syscall.ENOENT)
	}
	if strings.ContainsAny(rest, "/\n") {
		return perr("mkdir", name, syscall.EINVAL)
	}
	if _, ok := k.kernels[rest]; ok {
		return perr("mkdir", name, syscall.EEXIST)
	}
	k.kernels[rest] = &kernel{id: k.nextID, control: ControlStructure(k.nextID)}
	k.nextID++
	return nil
}

// Rmdir destroys a kernel entry.
func (k *Kernel) Rmdir(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.Check("rmdir", name); err != nil {
		return err
	}
	e, file, ok := k.entry(name)
	if !ok || file != "" {
		return perr("rmdir", name, syscall.ENOENT)
	}
	if e.online {
		return perr("rmdir", name, syscall.EBUSY)
	}
	delete(k.kernels, strings.TrimPrefix(name, Root+"/"))
	if len(k.kernels) == 0 {
		k.nextID = 1
	}
	return nil
}

// ReadDir lists Root.
func (k *Kernel) ReadDir(name string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if name != Root || !k.Mounted() {
		return nil, perr("open", name, syscall.ENOENT)
	}
	return slices.Sorted(maps.Keys(k.kernels)), nil
}

func (k *Kernel) syscall(c kexectest.Call) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ok, err := k.MountCall(c, false); ok {
		return err
	}
	switch c.Syscall {
	case "kexec_file_load":
		if c.Flags&(kexec.Multikernel|kexec.MKIDMask) != 0 {
			return syscall.EINVAL
		}
		if c.Flags&kexec.FileUnload != 0 {
			if !k.loaded {
				return syscall.ENOENT
			}
			k.loaded, k.image = false, ""
			return nil
		}
		k.loaded, k.image = true, c.CmdlineString()
	case "reboot":
		return syscall.EINVAL
	}
	return nil
}
