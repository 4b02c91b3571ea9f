package supervisor

import (
	"context"
	"log/slog"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
)

// Spec is one generation of a partition as a deployment asks a backend for
// it. Each backend package builds its Partition from a Spec (FromConfig),
// so the deployment composes backends without knowing their internals.
type Spec struct {
	// Config is the control config as the executive loads it, and
	// ConfigPath the file it loads it from.
	Config     *configs.Config
	ConfigPath string
	// Instance names this generation's cgroup, guest, second-kernel
	// instance and image directory: metadata.name for the first
	// generation, with the generation number after for later ones.
	Instance string
	// Region is the shared region's file under /dev/shm and RegionSize its
	// size; backends whose region is physical memory they reserve place it
	// themselves (Locator) and ignore Region.
	Region     string
	RegionSize int64
	// TakeFrom is the region of the running generation this one takes over
	// from (a hand-over: the control program starts on standby); "" for a
	// normal start. For physical memory it reads phys:<addr>,<size>.
	TakeFrom string
	// Beside is the running generation's partition during a hand-over, so
	// a backend can keep clear of what it holds; nil otherwise.
	Beside Partition
	// StateDir is the deployment's state directory (images, QMP sockets).
	StateDir string
	// Kernel, Init and Executable override the application kernel, the
	// mkrt-init binary and the mkrt binary ("" for the defaults).
	Kernel, Init, Executable string
	// Halt asks the partition's executive to drive its outputs safe and
	// stop (through the region's command ring).
	Halt func(context.Context) error
	Log  *slog.Logger
}

// Locator is a partition whose shared region is memory its own plan
// reserves (a second kernel's): it says where before the start, so the
// region can be formatted first.
type Locator interface {
	Locate() (shm.Location, error)
}
