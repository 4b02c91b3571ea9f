package image

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/supervisor"
)

// ForSpec builds the initramfs a backend boots for one generation of a
// partition — mkrt-init (spec.Init, else mkrt-init beside the running
// binary), the config as the executive runs it, the kernel's modules
// (DefaultModules and partition.kernel.modules) — into
// <state dir>/image-<instance> (with -standby for a hand-over's standby
// start), records cmdline beside it, and returns the initramfs's path.
func ForSpec(spec supervisor.Spec, kernel, cmdline string) (string, error) {
	init := spec.Init
	if init == "" {
		exe, _ := os.Executable()
		init = filepath.Join(filepath.Dir(exe), "mkrt-init")
	}
	text, err := configText(spec)
	if err != nil {
		return "", err
	}
	cfg := spec.Config
	modules := append(append([]string(nil), DefaultModules...), cfg.Partition.Kernel.Modules...)
	initrd, m, err := Build(Options{Init: init, Config: text, Kernel: kernel, Cmdline: cmdline, Modules: modules})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(spec.StateDir, "image-"+spec.Instance)
	if spec.TakeFrom != "" {
		dir += "-standby"
	}
	if err := WriteDir(dir, initrd, m); err != nil {
		return "", err
	}
	if spec.Log != nil {
		spec.Log.Info("application kernel image built", "kernel", kernel, "initramfs_bytes", m.Initramfs.Size, "dir", dir)
	}
	return filepath.Join(dir, "initramfs.cpio.gz"), nil
}

// configText is the config the partition loads: the file as the engineer
// wrote it when, read where the guest reads it, it is the config this side
// runs; else (a backend given on the command line, a generation's own
// CPUs, a path relative to the config file, which Load makes absolute)
// this side's config written out, so both sides compute the same hash.
func configText(spec supervisor.Spec) ([]byte, error) {
	text, err := os.ReadFile(spec.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if inGuest, err := configs.LoadBytes("/"+pid1.ConfigPath, text); err == nil && inGuest.Hash() == spec.Config.Hash() {
		return text, nil
	}
	return spec.Config.Marshal()
}
