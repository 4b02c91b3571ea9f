package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mkrt/mkrt/bridge/shm"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/image"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/process"
	"github.com/mkrt/mkrt/supervisor/vm"
)

// newPartition builds the partition for the config's backend.
func newPartition(ctx context.Context, cfg *configs.Config, o Options, region string, size int64, retainPath string, ch *channel, log *slog.Logger) (supervisor.Partition, error) {
	switch cfg.Partition.Backend {
	case configs.BackendProcess, "":
		return processPartition(cfg, o, region, retainPath, log)
	case configs.BackendVM:
		return vmPartition(ctx, cfg, o, region, size, ch, log)
	default:
		// The multikernel, parker and jailhouse backends (supervisor/multikernel,
		// supervisor/parker, supervisor/jailhouse) are built and tested against
		// fakes of their kernel interfaces only; mkrt run does not drive them yet.
		hint := ""
		if b := cfg.Partition.Backend; b == configs.BackendMultikernel || b == configs.BackendJailhouse {
			hint = fmt.Sprintf("review what it would load with `mkrt partition config --backend %s`, and ", b)
		}
		return nil, fmt.Errorf("deploy: mkrt run does not drive the %s backend yet: %srun the plant with backend process or vm", cfg.Partition.Backend, hint)
	}
}

func processPartition(cfg *configs.Config, o Options, region, retainPath string, log *slog.Logger) (supervisor.Partition, error) {
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
	args := []string{exe, "executive", "--config", cfgPath, "--shm", region, "--retain", retainPath}
	if o.takeFrom != "" {
		args = append(args, "--take-from", o.takeFrom) // start on standby (hand-over)
	}
	name := cfg.Metadata.Name
	if o.instance != "" {
		name = o.instance
	}
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

func vmPartition(ctx context.Context, cfg *configs.Config, o Options, region string, size int64, ch *channel, log *slog.Logger) (supervisor.Partition, error) {
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
	init := o.Init
	if init == "" {
		exe, _ := os.Executable()
		init = filepath.Join(filepath.Dir(exe), "mkrt-init")
	}
	text, err := os.ReadFile(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	if o.Backend != "" {
		// The guest loads the config as this side runs it.
		if text, err = cfg.Marshal(); err != nil {
			return nil, err
		}
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
	initrd, m, err := image.Build(image.Options{Init: init, Config: text, Kernel: kernel, Cmdline: cmdline, Modules: moduleList(cfg)})
	if err != nil {
		return nil, err
	}
	name := cfg.Metadata.Name
	if o.instance != "" {
		name = o.instance // a later generation: its own image, QMP socket and console
	}
	dir := filepath.Join(o.StateDir, "image-"+name)
	if o.takeFrom != "" {
		dir += "-standby"
	}
	if err := image.WriteDir(dir, initrd, m); err != nil {
		return nil, err
	}
	log.Info("application kernel image built", "kernel", kernel, "initramfs_bytes", m.Initramfs.Size, "dir", dir)

	qemu := vm.Config{Kernel: kernel, Initrd: filepath.Join(dir, "initramfs.cpio.gz"), Cmdline: cmdline,
		MemoryMiB: int(cfg.Partition.Memory >> 20), VCPUs: len(rtCPUs) + 1, ShmPath: region, ShmSize: size,
		TakeFromPath: o.takeFrom, TakeFromSize: takeSize}
	acc := vm.DetectAccel(ctx, qemu, 30*time.Second, "/run/mkrt/accel")
	qemu.Accel = acc.Name
	log.Info("accelerator", "accel", acc.Name, "why", acc.Why)
	opts := vm.Options{Name: name, QEMU: qemu, HostCPUs: append([]int{0}, cfg.Partition.CPUs...), RunDir: o.StateDir, Log: log,
		ConsoleLog: consoleLog{log},
		Halt: func(ctx context.Context) error {
			_, err := ch.r.Submit(shm.Command{Kind: shm.CmdHalt, Origin: shm.NewOrigin("supervisor")})
			return err
		}}
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
