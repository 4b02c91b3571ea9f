package deploy

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/multikernel"
	"github.com/mkrt/mkrt/supervisor/parker"
	"github.com/mkrt/mkrt/supervisor/process"
	"github.com/mkrt/mkrt/supervisor/vm"
)

// newPartition builds the partition of generation g for the config's
// backend; size is its shared region's.
func newPartition(ctx context.Context, cfg *configs.Config, o Options, g *generation, size int64, log *slog.Logger) (supervisor.Partition, error) {
	switch cfg.Partition.Backend {
	case configs.BackendProcess, "":
		return processPartition(cfg, o, g.regionPath, log)
	case configs.BackendVM:
		return vmPartition(ctx, cfg, o, g, size, log)
	case configs.BackendMultikernel:
		return multikernelPartition(cfg, o, g, log)
	case configs.BackendParker:
		return parkerPartition(cfg, o, g, log)
	case configs.BackendJailhouse:
		return jailhousePartition(cfg, o, g, log)
	default:
		return nil, fmt.Errorf("deploy: unknown backend %q (process, vm, multikernel, parker or jailhouse)", cfg.Partition.Backend)
	}
}

// instanceName names a generation's partition instance (its cgroup, guest,
// second kernel, image directory): metadata.name for the first, with the
// generation number after.
func (o Options) instanceName(cfg *configs.Config) string {
	if o.instance != "" {
		return o.instance
	}
	return cfg.Metadata.Name
}

// locator is a partition whose shared region is memory its own plan
// reserves (a second kernel's): it says where before the start, so the
// region can be formatted first.
type locator interface {
	Locate() (shm.Location, error)
}

// held is the memory the generation's second kernel holds, which a
// generation started beside it must keep clear of (nil for other backends).
func (g *generation) held() []kexec.Range {
	if g == nil {
		return nil
	}
	part := g.part
	if t, ok := part.(*standbyPartition); ok {
		part = t.cur()
	}
	switch p := part.(type) {
	case *multikernel.Partition:
		if plan := p.Plan(); plan != nil {
			return []kexec.Range{{Base: plan.MemoryBase, Bytes: plan.MemoryBytes}}
		}
	case *parker.Partition:
		l := p.SharedMemory()
		return []kexec.Range{{Base: l.Addr, Bytes: uint64(l.Size)}}
	}
	return nil
}

// multikernelPartition runs the control program as PID 1 of a second
// kernel spawned beside this one (supervisor/multikernel). Its shared
// region is the top of the instance's memory, mapped through /dev/mem; a
// generation taking over runs as a second instance, clear of the running
// one's memory, and finds the running region through mkrt.take=phys:….
func multikernelPartition(cfg *configs.Config, o Options, g *generation, log *slog.Logger) (supervisor.Partition, error) {
	name := o.instanceName(cfg)
	kernel, initrd, pc, host, err := secondKernel(cfg, o, name, "multikernel", log)
	if err != nil {
		return nil, err
	}
	return multikernel.New(multikernel.Options{Config: pc, Name: name, Beside: o.beside,
		Options: kexec.Options{Kernel: kernel, Initrd: initrd, Formatted: true, Halt: g.halt, Host: host}})
}

// parkerPartition runs the control program as PID 1 of a Parker secondary
// kernel (supervisor/parker). Its shared region is the first range the
// host's command line reserves with memmap=<size>$<addr> that is large
// enough and not the running generation's; a hand-over's second
// secondary needs a second such range.
func parkerPartition(cfg *configs.Config, o Options, g *generation, log *slog.Logger) (supervisor.Partition, error) {
	name := o.instanceName(cfg)
	kernel, initrd, pc, host, err := secondKernel(cfg, o, name, "parker", log)
	if err != nil {
		return nil, err
	}
	pc.Metadata.Name = name // the kernel entry /sys/fs/parker/<name>
	size := uint64(cfg.Partition.SharedMemory)
	if size == 0 {
		size = uint64(configs.DefaultSharedMemory)
	}
	addr, err := reservation(host.FS, size, o.beside, "the shared region")
	if err != nil {
		return nil, fmt.Errorf("deploy: parker backend: %w", err)
	}
	return parker.New(parker.Options{Config: pc, SharedMemory: addr,
		Options: kexec.Options{Kernel: kernel, Initrd: initrd, Formatted: true, Halt: g.halt, Host: host}})
}

// reservation is the first range of at least size bytes that the host's
// command line keeps from its kernel (memmap=<size>$<addr>) and that is
// not one of busy.
func reservation(fsys process.FS, size uint64, busy []kexec.Range, what string) (uint64, error) {
	cmdline, err := fsys.ReadFile("/proc/cmdline")
	if err != nil {
		return 0, err
	}
	res := kexec.Reservations(string(cmdline))
	for _, r := range res {
		if r.Bytes >= size && !slices.ContainsFunc(busy, r.Overlaps) {
			return r.Base, nil
		}
	}
	return 0, fmt.Errorf("the host's command line reserves no free range of at least %d KiB for %s (memmap=<size>$<addr>; found %v): add memmap=%dK$<addr> (one more for a hand-over) and reboot", size>>10, what, res, size>>10)
}

// JailhouseHost is how the jailhouse backend reaches the hypervisor; the
// zero value is the real host.
type JailhouseHost struct {
	// Open opens /dev/jailhouse; default jailhouse.OpenDevice.
	Open func() (jailhouse.Device, error)
	// Sys is sysfs (rooted at /sys); default os.DirFS("/sys").
	Sys fs.FS
	// Loader is Jailhouse's linux-loader.bin; default the first of
	// jailhouseLoaders that exists.
	Loader string
	// SystemConfig is the root-cell config that enables the hypervisor
	// when it is not enabled yet; "" needs it enabled (jailhouse enable).
	SystemConfig string
}

// Where Jailhouse's installation puts linux-loader.bin.
var jailhouseLoaders = []string{
	"/usr/local/libexec/jailhouse/linux-loader.bin",
	"/usr/libexec/jailhouse/linux-loader.bin",
	"/usr/local/share/jailhouse/inmates/tools/x86/linux-loader.bin",
	"/usr/share/jailhouse/inmates/tools/x86/linux-loader.bin",
}

// jailhouseCell is a jailhouse partition with the location of its region:
// the ivshmem read-write section, which this side maps through /dev/mem.
type jailhouseCell struct {
	*jailhouse.Partition
	loc shm.Location
}

// Locate is the cell's shared region.
func (c jailhouseCell) Locate() (shm.Location, error) { return c.loc, nil }

// jailhousePartition runs the control program in a non-root Linux cell
// (supervisor/jailhouse). The cell's memory window is the first memmap=
// reservation of the host's command line that holds it; its ivshmem
// device carries the shared region. mkrt run does not hand over on
// Jailhouse (a second cell would need the running one's region in its
// config), so a generation is always a normal start.
func jailhousePartition(cfg *configs.Config, o Options, g *generation, log *slog.Logger) (supervisor.Partition, error) {
	kernel, initrd, pc, host, err := secondKernel(cfg, o, o.instanceName(cfg), "jailhouse", log)
	if err != nil {
		return nil, err
	}
	jh := o.Jailhouse
	if jh.Sys == nil {
		jh.Sys = os.DirFS("/sys")
	}
	// The window's size does not depend on where it is: plan once to learn
	// it, then at the reservation that holds it.
	probe, err := jailhouse.Generate(pc, jailhouse.Options{MemoryBase: 1 << 32, Sys: jh.Sys})
	if err != nil {
		return nil, err
	}
	base, err := reservation(host.FS, probe.WindowSize, nil, "the cell's memory window")
	if err != nil {
		return nil, fmt.Errorf("deploy: jailhouse backend: %w", err)
	}
	plan, err := jailhouse.Generate(pc, jailhouse.Options{MemoryBase: base, Sys: jh.Sys})
	if err != nil {
		return nil, err
	}
	if jh.Loader == "" {
		for _, l := range jailhouseLoaders {
			if _, err := os.Stat(l); err == nil {
				jh.Loader = l
				break
			}
		}
		if jh.Loader == "" {
			return nil, fmt.Errorf("deploy: jailhouse backend: no linux-loader.bin in %v: install Jailhouse (make install) or give its path", jailhouseLoaders)
		}
	}
	n := len(cfg.Partition.CPUs)
	var rt []int
	for i := 1; i < n; i++ {
		rt = append(rt, i)
	}
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: rt, Housekeeping: []int{0}, MaxCState: -1,
		Extra: strings.TrimSpace("console=ttyS0,115200 " + pc.Partition.Kernel.Cmdline)})
	p, err := jailhouse.NewPartition(jailhouse.PartitionOptions{Plan: plan, Loader: jh.Loader, Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		SystemConfig: jh.SystemConfig, Open: jh.Open, Sys: jh.Sys, Halt: g.halt, Log: host.Log})
	if err != nil {
		return nil, err
	}
	loc := plan.ShmLocation()
	if host.DevMem != "" {
		loc.Path = host.DevMem
	}
	log.Info("jailhouse cell planned", "cell", plan.Cell.Name, "window", fmt.Sprintf("%#x+%#x", plan.WindowBase, plan.WindowSize), "shm", loc.String())
	return jailhouseCell{Partition: p, loc: loc}, nil
}

// secondKernel resolves what a kexec-family backend loads: the kernel, the
// initramfs (partition.kernel.initrd, else built), the config the backend
// plans from (with mkrt.take= for a hand-over) and the host seams.
func secondKernel(cfg *configs.Config, o Options, name, backend string, log *slog.Logger) (kernel, initrd string, pc *configs.Config, host kexec.Host, err error) {
	kernel = o.Kernel
	if kernel == "" {
		kernel = cfg.ResolvePath(cfg.Partition.Kernel.Image)
	}
	if kernel == "" {
		return "", "", nil, host, fmt.Errorf("deploy: %s backend: set partition.kernel.image to the application kernel (bzImage or vmlinux)", backend)
	}
	initrd = cfg.ResolvePath(cfg.Partition.Kernel.Initrd)
	if initrd == "" {
		if initrd, err = buildImage(cfg, o, kernel, name, "", log); err != nil {
			return "", "", nil, host, err
		}
	}
	c := *cfg
	if o.takeFrom != "" {
		c.Partition.Kernel.Cmdline = strings.TrimSpace(c.Partition.Kernel.Cmdline + " mkrt.take=" + o.takeFrom)
	}
	host = o.Kexec
	if host.Log == nil {
		host.Log = log.With("component", backend)
	}
	if host.FS == nil {
		host.FS = process.OSFS{} // read here too (the host's memmap= reservations)
	}
	return kernel, initrd, &c, host, nil
}

func processPartition(cfg *configs.Config, o Options, region string, log *slog.Logger) (supervisor.Partition, error) {
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("deploy: finding the mkrt binary: %w", err)
		}
	}
	cfgPath, err := filepath.Abs(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	var nics []process.NIC
	for _, n := range cfg.Partition.NICs {
		nics = append(nics, process.NIC{Interface: n.Interface, PCI: n.PCI, Address: n.Address, Gateway: n.Gateway})
	}
	prio := 0
	for _, t := range cfg.Tasks {
		prio = max(prio, t.Priority)
	}
	args := []string{exe, "executive", "--config", cfgPath, "--shm", region}
	if o.takeFrom != "" {
		args = append(args, "--take-from", o.takeFrom) // start on standby (hand-over)
	}
	name := o.instanceName(cfg)
	if o.Backend != "" {
		// The executive must see the same config (and hash) as this side.
		args = append(args, "--backend", string(o.Backend))
	}
	return process.New(process.Config{
		Name:    name,
		Command: args,
		// Go's asynchronous preemption signals show up in the latency tail;
		// the runtime reads this only at start.
		Env:      []string{"GODEBUG=asyncpreemptoff=1"},
		CPUs:     cfg.Partition.CPUs,
		Priority: prio,
		NICs:     nics,
		Log:      log.With("component", "process"),
	})
}

func vmPartition(ctx context.Context, cfg *configs.Config, o Options, g *generation, size int64, log *slog.Logger) (supervisor.Partition, error) {
	region := g.regionPath
	kernel := o.Kernel
	if kernel == "" {
		kernel = cfg.ResolvePath(cfg.Partition.Kernel.Image)
	}
	if kernel == "" {
		ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
		if len(ks) == 0 {
			return nil, fmt.Errorf("deploy: vm backend: no kernel: set partition.kernel.image or install Debian's linux-image-rt-amd64")
		}
		sort.Strings(ks)
		kernel = ks[len(ks)-1]
	}
	rtCPUs := make([]int, len(cfg.Partition.CPUs))
	for i := range rtCPUs {
		rtCPUs[i] = i + 1
	}
	extra := cfg.Partition.Kernel.Cmdline
	var takeSize int64
	if o.takeFrom != "" {
		// A hand-over: the guest maps the running partition's region too,
		// and is told which region is which.
		fi, err := os.Stat(o.takeFrom)
		if err != nil {
			return nil, fmt.Errorf("deploy: the region to take over from: %w", err)
		}
		takeSize = fi.Size()
		extra = strings.TrimSpace(extra + " mkrt.shm=pci:" + vm.ShmPCI + " mkrt.take=pci:" + vm.TakeFromPCI)
	}
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: rtCPUs, Housekeeping: []int{0}, MaxCState: -1, Extra: extra})
	name := o.instanceName(cfg) // a later generation: its own image, QMP socket and console
	initrd, err := buildImage(cfg, o, kernel, name, cmdline, log)
	if err != nil {
		return nil, err
	}

	qemu := vm.Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		MemoryMiB: int(cfg.Partition.Memory >> 20), VCPUs: len(rtCPUs) + 1, ShmPath: region, ShmSize: size,
		TakeFromPath: o.takeFrom, TakeFromSize: takeSize}
	acc := vm.DetectAccel(ctx, qemu, 30*time.Second, "/run/mkrt/accel")
	qemu.Accel = acc.Name
	log.Info("accelerator", "accel", acc.Name, "why", acc.Why)
	opts := vm.Options{Name: name, QEMU: qemu, HostCPUs: append([]int{0}, cfg.Partition.CPUs...), RunDir: o.StateDir, Log: log,
		ConsoleLog: consoleLog{log}, Halt: g.halt}
	if nics := cfg.Partition.NICs; len(nics) > 0 {
		n := nics[0]
		switch {
		case n.PCI != "":
			opts.QEMU.NIC = vm.NIC{Kind: "vfio", PCI: n.PCI}
		case n.HostAddress != "":
			opts.Tap, opts.HostAddress = n.Interface, n.HostAddress
		default:
			return nil, fmt.Errorf("deploy: vm backend: nic %q: give its pci address (vfio passthrough) or a host_address for a tap", n.Interface)
		}
	}
	return vm.New(opts), nil
}

// buildImage builds the application kernel's initramfs (mkrt-init, the
// config as this side runs it, the kernel's modules) into the state
// directory, one per partition instance and kind of start, and returns
// its path; cmdline is recorded beside it.
func buildImage(cfg *configs.Config, o Options, kernel, instance, cmdline string, log *slog.Logger) (string, error) {
	init := o.Init
	if init == "" {
		exe, _ := os.Executable()
		init = filepath.Join(filepath.Dir(exe), "mkrt-init")
	}
	text, err := os.ReadFile(o.ConfigPath)
	if err != nil {
		return "", err
	}
	if o.Backend != "" {
		// The partition loads the config as this side runs it.
		if text, err = cfg.Marshal(); err != nil {
			return "", err
		}
	}
	initrd, m, err := image.Build(image.Options{Init: init, Config: text, Kernel: kernel, Cmdline: cmdline, Modules: moduleList(cfg)})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(o.StateDir, "image-"+instance)
	if o.takeFrom != "" {
		dir += "-standby"
	}
	if err := image.WriteDir(dir, initrd, m); err != nil {
		return "", err
	}
	log.Info("application kernel image built", "kernel", kernel, "initramfs_bytes", m.Initramfs.Size, "dir", dir)
	return filepath.Join(dir, "initramfs.cpio.gz"), nil
}

// moduleList is image.DefaultModules plus the partition's extra modules.
func moduleList(cfg *configs.Config) []string {
	return append(append([]string(nil), image.DefaultModules...), cfg.Partition.Kernel.Modules...)
}

// consoleLog writes the guest's serial console to the log.
type consoleLog struct{ log *slog.Logger }

func (c consoleLog) Write(p []byte) (int, error) {
	c.log.Info("console", "line", string(trimNL(p)))
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
