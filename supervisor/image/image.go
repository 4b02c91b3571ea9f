// Package image builds what boots the application kernel: a reproducible
// initramfs (cpio newc, gzip) holding the static mkrt-init as /init, the
// control config, and the kernel modules the partition needs resolved with
// their dependencies from the kernel's modules.dep; the kernel command line;
// and a manifest of sizes and hashes.
//
// Two builds from the same inputs are byte-identical: records are written in
// a fixed order with zeroed mtimes, owners and devices, and the gzip header
// carries no time or name. The config carries the bridge's passwords, so
// it is mode 0600 in the archive and the initramfs file is 0600 on the host.
// Building needs no privileges; booting the result needs QEMU (vm backend)
// or a kexec-family kernel.
package image

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/mkrt/mkrt/rtkernel/pid1"
)

// DefaultModules are loaded in every application kernel that ships them as
// modules: the NICs the boards dedicate, virtio for QEMU guests, the
// userspace PCI drivers, and the driver of QEMU's i6300esb watchdog
// (Debian's kernels build it as a module; it binds only to that emulated
// device, and mkrt-init opens the watchdog only when its command line says
// mkrt.watchdog=, which the vm backend sets).
var DefaultModules = []string{"virtio_pci", "virtio_net", "e1000", "e1000e", "igb", "uio_pci_generic", "i6300esb"}

// Options are the inputs of one image build.
type Options struct {
	// Init is the static mkrt-init binary (CGO_ENABLED=0).
	Init string
	// Config is the control config as the engineer wrote it.
	Config []byte
	// Kernel is the kernel the image is for; its release picks the modules.
	Kernel string
	// ModulesRoot holds /lib/modules/<release>; default /lib/modules.
	ModulesRoot string
	// Modules are module names to include with their dependencies; nil means DefaultModules.
	Modules []string
	// Cmdline is the kernel command line recorded beside the image.
	Cmdline string
	// Extra files, archive path -> content (e.g. a board file).
	Extra map[string][]byte
}

// Manifest describes a built image.
type Manifest struct {
	KernelRelease string    `json:"kernel_release"`
	Kernel        FileSum   `json:"kernel"`
	Initramfs     FileSum   `json:"initramfs"`
	Uncompressed  int64     `json:"initramfs_uncompressed_bytes"`
	Cmdline       string    `json:"cmdline"`
	Modules       []string  `json:"modules"`
	NotModules    []string  `json:"not_modules,omitempty"` // built in or absent
	Files         []FileSum `json:"files"`
}

// FileSum is a file's size and SHA-256.
type FileSum struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func sum(p string, b []byte) FileSum {
	h := sha256.Sum256(b)
	return FileSum{Path: p, Size: int64(len(b)), SHA256: hex.EncodeToString(h[:])}
}

// Build returns the gzip-compressed initramfs and its manifest.
func Build(o Options) ([]byte, *Manifest, error) {
	m := &Manifest{Cmdline: o.Cmdline}
	files := map[string][]byte{}
	modes := map[string]uint64{}

	init, err := os.ReadFile(o.Init)
	if err != nil {
		return nil, nil, fmt.Errorf("image: init binary: %w (build it with: CGO_ENABLED=0 go build -o bin/mkrt-init ./cmd/mkrt-init)", err)
	}
	if !bytes.HasPrefix(init, []byte("\x7fELF")) {
		return nil, nil, fmt.Errorf("image: init binary %s is not an ELF executable", o.Init)
	}
	files[pid1.InitPath], modes[pid1.InitPath] = init, 0o755
	files[pid1.ConfigPath], modes[pid1.ConfigPath] = o.Config, 0o600 // it holds passwords
	for p, b := range o.Extra {
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		files[p], modes[p] = b, 0o644
	}

	if o.Kernel != "" {
		kb, err := os.ReadFile(o.Kernel)
		if err != nil {
			return nil, nil, fmt.Errorf("image: kernel: %w", err)
		}
		m.Kernel = sum(o.Kernel, kb)
		rel, err := KernelRelease(o.Kernel)
		if err != nil {
			return nil, nil, err
		}
		m.KernelRelease = rel
		root := o.ModulesRoot
		if root == "" {
			root = "/lib/modules"
		}
		dir := filepath.Join(root, rel)
		depf, err := os.Open(filepath.Join(dir, "modules.dep"))
		if err != nil {
			return nil, nil, fmt.Errorf("image: modules of kernel %s: %w (install the kernel's package, e.g. linux-image-rt-amd64)", rel, err)
		}
		deps, err := ParseModulesDep(depf)
		depf.Close()
		if err != nil {
			return nil, nil, err
		}
		want := o.Modules
		if want == nil {
			want = DefaultModules
		}
		order, missing := deps.Resolve(want)
		m.NotModules = missing
		var list []string
		for _, rp := range order {
			b, err := os.ReadFile(filepath.Join(dir, rp))
			if err != nil {
				return nil, nil, fmt.Errorf("image: module %s: %w", rp, err)
			}
			ap := path.Join(pid1.ModulesPrefix, rel, rp)
			files[ap], modes[ap] = b, 0o644
			list = append(list, "/"+ap)
			m.Modules = append(m.Modules, ModuleName(rp))
		}
		files[pid1.ModuleOrder], modes[pid1.ModuleOrder] = []byte(strings.Join(list, "\n")+"\n"), 0o644
	}

	raw, err := archive(files, modes)
	if err != nil {
		return nil, nil, err
	}
	m.Uncompressed = int64(len(raw))
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	// gzip.Writer leaves ModTime and Name zero unless set: reproducible.
	if _, err := zw.Write(raw); err != nil {
		return nil, nil, fmt.Errorf("image: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("image: compress: %w", err)
	}
	for _, p := range sortedKeys(files) {
		m.Files = append(m.Files, sum("/"+p, files[p]))
	}
	m.Initramfs = sum("initramfs.cpio.gz", gz.Bytes())
	return gz.Bytes(), m, nil
}

// archive writes files (and every parent directory, plus the device nodes
// the kernel needs before devtmpfs is mounted) as a newc cpio.
func archive(files map[string][]byte, modes map[string]uint64) ([]byte, error) {
	dirs := map[string]bool{"dev": true, "proc": true, "sys": true, "tmp": true, "run": true, "etc": true, "root": true}
	for p := range files {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var recs []cpio.Record
	for _, d := range sortedKeys(dirs) {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	recs = append(recs, cpio.CharDev("dev/console", 0o600, 5, 1), cpio.CharDev("dev/null", 0o666, 1, 3))
	for _, p := range sortedKeys(files) {
		recs = append(recs, cpio.StaticRecord(files[p], cpio.Info{Name: p, Mode: cpio.S_IFREG | modes[p], FileSize: uint64(len(files[p])), NLink: 1}))
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	for i, r := range recs {
		r = cpio.MakeReproducible(r)
		r.Ino = uint64(i + 1)
		if err := w.WriteRecord(r); err != nil {
			return nil, fmt.Errorf("image: cpio %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("image: cpio trailer: %w", err)
	}
	return buf.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

// WriteDir writes initramfs.cpio.gz, cmdline and manifest.json into dir.
func WriteDir(dir string, initramfs []byte, m *Manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("image: manifest: %w", err)
	}
	// The initramfs carries the config, and so every MQTT password in it:
	// only its owner reads it.
	for name, b := range map[string][]byte{
		"initramfs.cpio.gz": initramfs,
		"cmdline":           []byte(m.Cmdline + "\n"),
		"manifest.json":     append(mj, '\n'),
	} {
		mode := os.FileMode(0o644)
		if name == "initramfs.cpio.gz" {
			mode = 0o600
		}
		if err := writeFile(filepath.Join(dir, name), b, mode); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes b to path with mode, also when path exists with
// another mode (os.WriteFile keeps an existing file's).
func writeFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("image: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("image: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}
