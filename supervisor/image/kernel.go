package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNotBzImage means a kernel file has no x86 boot-protocol header.
var ErrNotBzImage = errors.New("image: not an x86 bzImage")

// KernelRelease reads the release string ("6.1.0-56-rt-amd64") from an x86
// bzImage's boot-protocol header (kernel_version field at 0x20E).
func KernelRelease(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image: kernel: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("image: kernel %s: %w", path, ErrNotBzImage)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("image: kernel %s: %w (no HdrS magic)", path, ErrNotBzImage)
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20E:])) + 0x200
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, off)
	if n == 0 {
		return "", fmt.Errorf("image: kernel %s: version string at %#x: %w", path, off, err)
	}
	buf = buf[:n]
	if i := bytes.IndexAny(buf, " \x00"); i >= 0 {
		buf = buf[:i]
	}
	if len(buf) == 0 {
		return "", fmt.Errorf("image: kernel %s: empty version string", path)
	}
	return string(buf), nil
}
