package configs

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A name in a config ends up in places with their own size limits: the
// shared region's fixed-size tables, socket paths, interface names. Each
// limit below is the tightest of the places its name goes; Validate refuses
// a longer name at its position and says where the name is used. The
// region's table sizes are shm's (its tests check that these agree).
const (
	// MaxPartitionName bounds metadata.name: the shared region's header
	// holds 32 bytes of it, and it names the control socket
	// /run/mkrt/<name>.sock and the vm backend's QMP socket
	// /var/lib/mkrt/<name>/mkrt-<name>.qmp (a unix socket path is at most
	// 107 bytes), the cpuset cgroup and the network namespace mkrt-<name>.
	MaxPartitionName = 32
	// MaxTagName bounds tag names: the region's tag directory.
	MaxTagName = 64
	// MaxDeviceName bounds device names: the region's tag directory.
	MaxDeviceName = 64
	// MaxTaskName bounds task names: the region's task table.
	MaxTaskName = 48
	// MaxBlockName bounds block names (they appear in block.port references
	// and in messages).
	MaxBlockName = 64
	// MaxUnit bounds engineering units: the region's tag directory.
	MaxUnit = 16
	// MaxIfName is the longest Linux interface name (IFNAMSIZ less its NUL).
	MaxIfName = 15
	// MaxString bounds every other string of a config (paths, addresses,
	// descriptions): PATH_MAX is 4096.
	MaxString = 4096
)

// The reasons given with each limit.
const (
	whyPartitionName = "it is stored in the shared region's header and names the control socket /run/mkrt/<name>.sock, the QMP socket, the cgroup and the network namespace mkrt-<name>"
	whyTagName       = "it is stored in the shared region's tag directory"
	whyTaskName      = "it is stored in the shared region's task table"
	whyBlockName     = "block names are kept short enough to read in block.port references"
	whyIfName        = "it is not an interface name, which Linux keeps to 15 bytes (IFNAMSIZ less its NUL)"
	whyString        = "no path, address or text of a config is longer"
)

// short quotes s for a message, cut to its first 40 bytes when longer (a
// 5 MB name does not belong in an error).
func short(s string) string {
	if len(s) <= 40 {
		return strconv.Quote(s)
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// bounded reports a string longer than limit bytes, saying why the limit is
// there; it reports whether s fits.
func (k *checker) bounded(s string, pos Pos, what string, limit int, why string) bool {
	if len(s) <= limit {
		return true
	}
	k.add(pos, "%s %s is %d bytes; at most %d: %s", what, short(s), len(s), limit, why)
	return false
}

// stringLimit is the limit of a string field other than a name (names are
// checked with the limit of where each is used).
func stringLimit(field string) (limit int, why string) {
	if field == "unit" {
		return MaxUnit, whyTagName
	}
	return MaxString, whyString
}

// ifName checks a Linux interface name.
func (k *checker) ifName(p *string, fallback Pos, what string) {
	if *p == "" || !k.bounded(*p, k.at(p, fallback), what, MaxIfName, whyIfName) {
		return
	}
	if strings.ContainsAny(*p, "/: \t") {
		k.add(k.at(p, fallback), "%s %q is not an interface name: no '/', ':' or blanks", what, *p)
	}
}

// MaxSharedMemory is the largest partition.shared_memory: the region is
// mapped whole by every side, rounded up to a power of two for an ivshmem
// BAR, and held in memory (tmpfs) for the partition's life.
const MaxSharedMemory = 1 << 30

// ShmDir is where the process and vm backends keep the region file.
const ShmDir = "/dev/shm"

// sharedMemory bounds partition.shared_memory by MaxSharedMemory and, for
// the backends whose region is a file in ShmDir, by that file system's
// size where this host has one.
func (k *checker) sharedMemory(p *Partition) {
	pos := k.at(&p.SharedMemory, p.Pos)
	if p.SharedMemory > MaxSharedMemory {
		k.add(pos, "partition.shared_memory %s is above the most mkrt maps, %s; the region needs a few MiB (default %s)", formatSize(int64(p.SharedMemory)), formatSize(MaxSharedMemory), formatSize(int64(DefaultSharedMemory)))
		return
	}
	if p.Backend != "" && p.Backend != BackendProcess && p.Backend != BackendVM {
		return
	}
	if total, ok := fsSize(ShmDir); ok && int64(p.SharedMemory) > total {
		k.add(pos, "partition.shared_memory %s is larger than %s on this host (%s): the region would not fit; lower it or enlarge %s (mount -o remount,size=… %s)", formatSize(int64(p.SharedMemory)), ShmDir, formatSize(total), ShmDir, ShmDir)
	}
}
