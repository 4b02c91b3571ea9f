package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/multikernel"
)

// defaultJailhouseBase is where `mkrt partition config` places a Jailhouse
// cell's memory when --memory-base is not given (Jailhouse's own x86 demo
// configs reserve memory there).
const defaultJailhouseBase = 0x3a000000

// newPartitionCmd is `mkrt partition config --backend jailhouse|multikernel CONFIG`.
func newPartitionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "partition configs for the kexec-family and Jailhouse backends",
	}
	cmd.AddCommand(partitionConfigCmd())
	return cmd
}

type partitionFlags struct {
	backend, out string
	// jailhouse
	memoryBase, sysfs, ivshmemBDF string
	iommu                         uint8
	// multikernel
	hostRoot, poolBase, poolSize string
}

func partitionConfigCmd() *cobra.Command {
	var f partitionFlags
	cmd := &cobra.Command{
		Use:   "config --backend jailhouse|multikernel CONFIG [--out FILE]",
		Short: "print what a backend would load for a config's partition, for review",
		Long: "Generate what the backend loads for the config's partition and print it\n" +
			"decoded, so an engineer can review it before it touches the machine.\n\n" +
			"jailhouse: the binary cell config (Jailhouse " + jailhouse.Release + ", revision " + strconv.Itoa(jailhouse.Revision) + "):\n" +
			"CPUs, the cell's RAM at --memory-base, the comm region, the ivshmem-v2\n" +
			"device of the shared channel, the dedicated NICs (read from --sysfs; root\n" +
			"reads their capabilities) and the console; then the host kernel parameter\n" +
			"that reserves the memory and the root-cell config lines the ivshmem peer\n" +
			"needs. --out writes the .cell file (jailhouse cell create takes it).\n\n" +
			"multikernel: the instance overlay as device-tree source; --out writes the\n" +
			"DTBO. The host is read from --host-root (proc/cpuinfo, proc/iomem,\n" +
			"sys/fs/multikernel/device_tree); on a host without multikernel support\n" +
			"give the memory pool with --pool-base and --pool-size.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configs.Load(args[0], blocks.Validate)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			backend := configs.Backend(f.backend)
			if backend == "" {
				backend = cfg.Partition.Backend
			}
			switch backend {
			case configs.BackendJailhouse:
				return jailhouseConfig(cmd.OutOrStdout(), cfg, f)
			case configs.BackendMultikernel:
				return multikernelConfig(cmd.OutOrStdout(), cfg, f)
			}
			return fmt.Errorf("partition config: backend %q has no generated config (use --backend jailhouse or multikernel)", backend)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.backend, "backend", "", "jailhouse or multikernel (default: the config's partition.backend)")
	fl.StringVar(&f.out, "out", "", "write the binary (jailhouse .cell, multikernel .dtbo) to this file")
	fl.StringVar(&f.memoryBase, "memory-base", fmt.Sprintf("%#x", defaultJailhouseBase), "jailhouse: physical address of the cell's memory window (reserve it with the printed memmap=)")
	fl.StringVar(&f.sysfs, "sysfs", "/sys", "jailhouse: sysfs to read the dedicated NICs from")
	fl.StringVar(&f.ivshmemBDF, "ivshmem-bdf", jailhouse.FormatBDF(0, jailhouse.DefaultIvshmemBDF), "jailhouse: virtual PCI address of the shared channel's ivshmem device (a free slot on bus 0)")
	fl.Uint8Var(&f.iommu, "iommu", 0, "jailhouse: IOMMU unit index of the dedicated NICs")
	fl.StringVar(&f.hostRoot, "host-root", "/", "multikernel: root of the host's /proc and /sys")
	fl.StringVar(&f.poolBase, "pool-base", "", "multikernel: physical base of the memory pool (overrides the host's)")
	fl.StringVar(&f.poolSize, "pool-size", "", "multikernel: size of the memory pool, e.g. 1Gi (with --pool-base)")
	return cmd
}

func jailhouseConfig(w io.Writer, cfg *configs.Config, f partitionFlags) error {
	base, err := strconv.ParseUint(f.memoryBase, 0, 64)
	if err != nil {
		return fmt.Errorf("--memory-base %q: not an address", f.memoryBase)
	}
	_, bdf, err := jailhouse.ParseBDF(f.ivshmemBDF)
	if err != nil {
		return fmt.Errorf("--ivshmem-bdf: %w", err)
	}
	plan, err := jailhouse.Generate(cfg, jailhouse.Options{MemoryBase: base, Sys: os.DirFS(f.sysfs), IvshmemBDF: bdf, IOMMU: f.iommu})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	raw, err := jailhouse.Encode(plan.Cell)
	if err != nil {
		return err
	}
	// Print what the bytes say, not what was meant: decode what would load.
	cell, err := jailhouse.Decode(raw)
	if err != nil {
		return err
	}
	if f.out != "" {
		if err := os.WriteFile(f.out, raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "# wrote %s (%d bytes)\n", f.out, len(raw))
	}
	if err := cell.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nhost requirements:\n")
	fmt.Fprintf(w, "  root cell kernel command line: %s\n", plan.HostCmdline())
	fmt.Fprintf(w, "  shared channel on the root side: %s (ivshmem read-write section)\n", plan.ShmLocation())
	fmt.Fprintf(w, "  root-cell system config must declare the ivshmem peer:\n\n%s", plan.RootCellSnippet())
	return nil
}

func multikernelConfig(w io.Writer, cfg *configs.Config, f partitionFlags) error {
	host, err := multikernel.ReadHost(os.DirFS(f.hostRoot))
	if f.poolBase != "" || f.poolSize != "" {
		base, perr := strconv.ParseUint(f.poolBase, 0, 64)
		size, serr := configs.ParseSize(f.poolSize)
		if perr != nil || serr != nil || size <= 0 {
			return errors.New("--pool-base ADDR and --pool-size SIZE go together, e.g. --pool-base 0x100000000 --pool-size 1Gi")
		}
		host.MemoryBase, host.MemoryBytes = base, uint64(size)
		err = nil
	}
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%w (on a host without multikernel support give --pool-base and --pool-size)", err)}
	}
	plan, err := multikernel.Generate(cfg, host)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if f.out != "" {
		dtbo, err := plan.Overlay()
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.out, dtbo, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "/* wrote %s (%d bytes) */\n", f.out, len(dtbo))
	}
	_, err = io.WriteString(w, plan.DTS())
	return err
}
