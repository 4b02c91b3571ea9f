package kexec_test

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/mkrt/mkrt/supervisor/kexec"
)

// fakeELF is the head of an x86-64 ELF executable followed by filler.
func fakeELF() []byte {
	b := make([]byte, 4096)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	binary.LittleEndian.PutUint16(b[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(b[18:], uint16(elf.EM_X86_64))
	for i := 64; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// bzImage wraps payload as an x86 bzImage with setupSects setup sectors,
// the payload 0x100 bytes into the protected-mode code, and the size
// trailer the kernel build appends.
func bzImage(payload []byte, size int, setupSects byte) []byte {
	payload = binary.LittleEndian.AppendUint32(append([]byte(nil), payload...), uint32(size))
	sects := int(setupSects)
	if sects == 0 {
		sects = 4 // what the boot protocol reads a zero as
	}
	pm := (sects + 1) * 512
	img := make([]byte, pm+0x100+len(payload)+64)
	img[0x1f1] = setupSects
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x020f)
	binary.LittleEndian.PutUint32(img[0x248:], 0x100)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)))
	copy(img[pm+0x100:], payload)
	return img
}

func TestVmlinuxFormats(t *testing.T) {
	want := fakeELF()
	var gz, zs, l4 bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(want)
	zw.Close()
	enc, _ := zstd.NewWriter(&zs)
	enc.Write(want)
	enc.Close()
	lw := lz4.NewWriter(&l4)
	lw.Apply(lz4.LegacyOption(true))
	lw.Write(want)
	lw.Close()
	for name, img := range map[string][]byte{
		"elf":  want,
		"gzip": bzImage(gz.Bytes(), len(want), 27),
		"zstd": bzImage(zs.Bytes(), len(want), 0), // 0 setup sectors means 4
		"lz4":  bzImage(l4.Bytes(), len(want), 39),
	} {
		got, err := kexec.Vmlinux(img)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, not the vmlinux", name, len(got))
		}
	}
}

func TestVmlinuxErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		img  []byte
		want error
		text string
	}{
		"empty":     {nil, kexec.ErrNotKernel, "HdrS"},
		"garbage":   {bytes.Repeat([]byte{0xaa}, 4096), kexec.ErrNotKernel, "HdrS"},
		"lzma":      {bzImage([]byte{0x5d, 0, 0, 0x80, 0, 1, 2, 3}, 1, 4), kexec.ErrCompression, "lzma"},
		"lzo":       {bzImage([]byte{0x89, 'L', 'Z', 'O', 0, 1}, 1, 4), kexec.ErrCompression, "lzo"},
		"unknown":   {bzImage([]byte{1, 2, 3, 4, 5, 6}, 1, 4), kexec.ErrCompression, "magic"},
		"truncated": {bzImage([]byte{0x1f, 0x8b, 8, 0}, 1, 4)[:0x300], kexec.ErrNotKernel, "outside"},
	} {
		_, err := kexec.Vmlinux(tc.img)
		if !errors.Is(err, tc.want) || !bytes.Contains([]byte(err.Error()), []byte(tc.text)) {
			t.Errorf("%s: err = %v, want %v mentioning %q", name, err, tc.want, tc.text)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("not an elf at all"))
	zw.Close()
	if _, err := kexec.Vmlinux(bzImage(gz.Bytes(), 17, 4)); !errors.Is(err, kexec.ErrNotKernel) {
		t.Errorf("non-ELF payload: %v", err)
	}
}

// TestDebianRTKernel extracts the vmlinux from Debian's PREEMPT_RT kernel
// (xz with the x86 BCJ filter) and reads it as an x86-64 ELF.
func TestDebianRTKernel(t *testing.T) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-amd64")
	if len(ks) == 0 {
		t.Skip("no /boot/vmlinuz-*-rt-amd64 (install Debian linux-image-rt-amd64)")
	}
	sort.Strings(ks)
	f, err := kexec.OpenVmlinux(ks[len(ks)-1], t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !kexec.IsELF(head) {
		t.Fatalf("%s: extracted image starts % x, %v", ks[len(ks)-1], head, err)
	}
	e, err := elf.NewFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if e.Machine != elf.EM_X86_64 || e.Class != elf.ELFCLASS64 {
		t.Errorf("machine %v class %v, want x86-64", e.Machine, e.Class)
	}
	st, _ := f.Stat()
	t.Logf("%s: vmlinux of %d bytes, entry %#x", ks[len(ks)-1], st.Size(), e.Entry)
}

func TestOpenVmlinuxELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(p, fakeELF(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := kexec.OpenVmlinux(p, "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != p {
		t.Errorf("an ELF image is passed as is, got %s", f.Name())
	}
}

func FuzzVmlinux(f *testing.F) {
	f.Add(bzImage([]byte{0x1f, 0x8b, 8, 0, 0, 0}, 10, 4))
	f.Add(bzImage([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, 10, 0))
	f.Fuzz(func(t *testing.T, img []byte) {
		_, _ = kexec.Vmlinux(img)
	})
}

// BenchmarkDebianRTKernel measures extracting the vmlinux of Debian's
// PREEMPT_RT kernel (xz, BCJ), the cost paid once per partition start.
func BenchmarkDebianRTKernel(b *testing.B) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-amd64")
	if len(ks) == 0 {
		b.Skip("no /boot/vmlinuz-*-rt-amd64")
	}
	img, err := os.ReadFile(ks[0])
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := kexec.Vmlinux(img); err != nil {
			b.Fatal(err)
		}
	}
}
