package kexec

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/therootcompany/xz"
)

// Errors of the image helpers, for errors.Is.
var (
	// ErrNotKernel is a file that is neither an ELF image nor an x86 bzImage
	// with a payload (boot protocol 2.08 or later).
	ErrNotKernel = errors.New("kexec: not an ELF vmlinux or an x86 bzImage")
	// ErrCompression is a bzImage payload compressed in a format this
	// package does not decompress; the message names the format.
	ErrCompression = errors.New("kexec: unsupported bzImage compression")
)

// MaxVmlinux bounds a decompressed kernel (a payload that inflates beyond
// it is refused rather than filling memory).
const MaxVmlinux = 1 << 30

var elfMagic = []byte{0x7f, 'E', 'L', 'F'}

// IsELF reports whether b starts with the ELF magic.
func IsELF(b []byte) bool { return bytes.HasPrefix(b, elfMagic) }

// x86 boot protocol offsets (Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1
	offHeader        = 0x202 // "HdrS"
	offVersion       = 0x206
	offPayloadOffset = 0x248
	offPayloadLength = 0x24c
	minVersion       = 0x208 // payload_offset/payload_length appeared in 2.08
)

// decompressor is one payload format, found by its magic.
type decompressor struct {
	name  string
	magic []byte
	open  func(r io.Reader) (io.Reader, error)
}

var decompressors = []decompressor{
	{"gzip", []byte{0x1f, 0x8b}, func(r io.Reader) (io.Reader, error) {
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		z.Multistream(false)
		return z, nil
	}},
	// The kernel's xz streams use the x86 BCJ filter, which only an
	// xz-embedded port decodes.
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, func(r io.Reader) (io.Reader, error) { return xz.NewReader(r, 0) }},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}, func(r io.Reader) (io.Reader, error) {
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxVmlinux))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}},
	{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}, func(r io.Reader) (io.Reader, error) { return lz4.NewReader(r), nil }},
	{"bzip2", []byte("BZh"), func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil }},
	{"lzma", []byte{0x5d, 0x00, 0x00}, nil},
	{"lzo", []byte{0x89, 'L', 'Z', 'O'}, nil},
}

// Vmlinux returns the ELF vmlinux of a kernel image: img itself when it is
// ELF, else the decompressed payload of an x86 bzImage, found through the
// setup header's payload_offset and payload_length. gzip, xz, zstd, lz4 and
// bzip2 payloads are decompressed; lzma and lzo are ErrCompression.
func Vmlinux(img []byte) ([]byte, error) {
	if IsELF(img) {
		return img, nil
	}
	payload, err := Payload(img)
	if err != nil {
		return nil, err
	}
	for _, d := range decompressors {
		if !bytes.HasPrefix(payload, d.magic) {
			continue
		}
		if d.open == nil {
			return nil, fmt.Errorf("%w: %s (rebuild the kernel with CONFIG_KERNEL_GZIP, _XZ, _ZSTD or _LZ4, or give the ELF vmlinux)", ErrCompression, d.name)
		}
		// The build appends the decompressed size (le32) to the stream.
		stream := payload
		if len(stream) > 4 {
			stream = stream[:len(stream)-4]
		}
		r, err := d.open(bytes.NewReader(stream))
		if err != nil {
			return nil, fmt.Errorf("kexec: %s payload: %w", d.name, err)
		}
		out, err := io.ReadAll(io.LimitReader(r, MaxVmlinux+1))
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && IsELF(out)) {
			return nil, fmt.Errorf("kexec: decompressing the %s payload: %w", d.name, err)
		}
		if len(out) > MaxVmlinux {
			return nil, fmt.Errorf("kexec: %s payload inflates beyond %d bytes", d.name, MaxVmlinux)
		}
		if !IsELF(out) {
			return nil, fmt.Errorf("%w: the %s payload is not an ELF image", ErrNotKernel, d.name)
		}
		return out, nil
	}
	n := min(len(payload), 8)
	return nil, fmt.Errorf("%w: unknown payload magic % x", ErrCompression, payload[:n])
}

// Payload returns the compressed payload of an x86 bzImage.
func Payload(img []byte) ([]byte, error) {
	if len(img) < offPayloadLength+4 || string(img[offHeader:offHeader+4]) != "HdrS" {
		return nil, fmt.Errorf("%w: no HdrS setup header", ErrNotKernel)
	}
	if v := binary.LittleEndian.Uint16(img[offVersion:]); v < minVersion {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d predates payload_offset (2.08)", ErrNotKernel, v>>8, v&0xff)
	}
	setup := int(img[offSetupSects])
	if setup == 0 {
		setup = 4
	}
	start := uint64(setup+1)*512 + uint64(binary.LittleEndian.Uint32(img[offPayloadOffset:]))
	end := start + uint64(binary.LittleEndian.Uint32(img[offPayloadLength:]))
	if end <= start || end > uint64(len(img)) {
		return nil, fmt.Errorf("%w: payload %d-%d outside the %d-byte image", ErrNotKernel, start, end, len(img))
	}
	return img[start:end], nil
}

// OpenVmlinux opens a kernel image for kexec_file_load as an ELF vmlinux:
// the file itself when it is ELF, else an unlinked file in dir (""
// os.TempDir) holding the vmlinux extracted from the bzImage. The caller
// closes it.
func OpenVmlinux(path, dir string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kexec: %w", err)
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err == nil && IsELF(head) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("kexec: %w", err)
		}
		return f, nil
	}
	img, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<31))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("kexec: reading %s: %w", path, err)
	}
	elf, err := Vmlinux(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "mkrt-vmlinux-*")
	if err != nil {
		return nil, fmt.Errorf("kexec: %w", err)
	}
	os.Remove(tmp.Name())
	if _, err := tmp.Write(elf); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("kexec: writing the extracted vmlinux: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("kexec: %w", err)
	}
	return tmp, nil
}
