package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/supervisor/image"
)

// newImageCmd is `mkrt image build`: the application kernel's initramfs,
// command line and manifest for a config.
func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "build the application kernel image (initramfs, cmdline, manifest)"}
	var cfgPath, kernel, init, out string
	build := &cobra.Command{
		Use:   "build --config CONFIG --kernel VMLINUZ --out DIR",
		Short: "build a reproducible initramfs with mkrt-init, the config and the NIC modules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(cfgPath, blocks.Validate)
			if err != nil {
				return &exitError{1, err}
			}
			text, err := os.ReadFile(cfgPath)
			if err != nil {
				return err
			}
			if kernel == "" {
				kernel = cfg.ResolvePath(cfg.Partition.Kernel.Image)
			}
			if kernel == "" {
				ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
				if len(ks) == 0 {
					return fmt.Errorf("no kernel: give --kernel or install linux-image-rt-amd64")
				}
				sort.Strings(ks)
				kernel = ks[len(ks)-1]
			}
			if init == "" {
				exe, _ := os.Executable()
				init = filepath.Join(filepath.Dir(exe), "mkrt-init")
			}
			rt := make([]int, len(cfg.Partition.CPUs))
			for i := range rt {
				rt[i] = i + 1
			}
			cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: rt, Housekeeping: []int{0}, MaxCState: -1, Extra: cfg.Partition.Kernel.Cmdline})
			mods := append(append([]string(nil), image.DefaultModules...), cfg.Partition.Kernel.Modules...)
			b, m, err := image.Build(image.Options{Init: init, Config: text, Kernel: kernel, Cmdline: cmdline, Modules: mods})
			if err != nil {
				return err
			}
			if err := image.WriteDir(out, b, m); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "kernel      %s (%s)\n", kernel, m.KernelRelease)
			fmt.Fprintf(w, "initramfs   %s: %d bytes (%d uncompressed), sha256 %s\n", filepath.Join(out, "initramfs.cpio.gz"), m.Initramfs.Size, m.Uncompressed, m.Initramfs.SHA256)
			fmt.Fprintf(w, "modules     %v\n", m.Modules)
			if len(m.NotModules) > 0 {
				fmt.Fprintf(w, "built in    %v (not shipped as modules by this kernel)\n", m.NotModules)
			}
			fmt.Fprintf(w, "cmdline     %s\n", m.Cmdline)
			return nil
		},
	}
	build.Flags().StringVar(&cfgPath, "config", "", "control config")
	build.Flags().StringVar(&kernel, "kernel", "", "kernel image (default partition.kernel.image, else the newest /boot/vmlinuz-*-rt-*)")
	build.Flags().StringVar(&init, "init", "", "static mkrt-init binary (default: next to mkrt)")
	build.Flags().StringVar(&out, "out", "out/image", "output directory")
	_ = build.MarkFlagRequired("config")
	cmd.AddCommand(build)
	return cmd
}
