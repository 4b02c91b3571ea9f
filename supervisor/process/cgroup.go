package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// cpuset is the partition's cpuset cgroup (v2 or v1).
type cpuset struct {
	fs     FS
	v2     bool
	parent string // mkrt.slice (v2) or cpuset/mkrt (v1)
	dir    string // the partition's cgroup
	mode   string // "v2 isolated", "v2 root", "v2 member", "v1 exclusive", "v1 shared"
	notes  []string
}

// setupCPUSet creates the partition's cpuset under cgroupRoot
// (/sys/fs/cgroup) and confines it to cpus. Under cgroup v2 it asks for an
// isolated partition, falling back to root and then member; under v1 it
// asks for an exclusive cpuset. notes lists what was not granted.
func setupCPUSet(fsys FS, cgroupRoot, name, cpus string) (*cpuset, error) {
	c := &cpuset{fs: fsys}
	if b, err := fsys.ReadFile(path.Join(cgroupRoot, "cgroup.controllers")); err == nil && hasWord(string(b), "cpuset") {
		c.v2 = true
		return c, c.setupV2(cgroupRoot, name, cpus)
	}
	if _, err := fsys.ReadFile(path.Join(cgroupRoot, "cpuset", "cpuset.cpus")); err == nil {
		return c, c.setupV1(path.Join(cgroupRoot, "cpuset"), name, cpus)
	}
	return nil, fmt.Errorf("process: cpuset: no cpuset controller under %s (neither cgroup v2 with cpuset nor a v1 cpuset hierarchy): %w", cgroupRoot, ErrUnsupported)
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func (c *cpuset) mkdir(dir string) error {
	if err := c.fs.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("process: cpuset: %w", err)
	}
	return nil
}

func (c *cpuset) write(file, value string) error {
	if err := c.fs.WriteFile(file, []byte(value)); err != nil {
		return fmt.Errorf("process: cpuset: write %q: %w", value, err)
	}
	return nil
}

func (c *cpuset) read(file string) string {
	b, err := c.fs.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (c *cpuset) setupV2(root, name, cpus string) error {
	mems := c.read(path.Join(root, "cpuset.mems.effective"))
	if mems == "" {
		mems = "0"
	}
	c.parent = path.Join(root, "mkrt.slice")
	if err := c.mkdir(c.parent); err != nil {
		return err
	}
	if err := c.write(path.Join(root, "cgroup.subtree_control"), "+cpuset"); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}, {"cgroup.subtree_control", "+cpuset"}} {
		if err := c.write(path.Join(c.parent, kv[0]), kv[1]); err != nil {
			return err
		}
	}
	// The slice must itself be a partition root for its child to be one.
	if err := c.write(path.Join(c.parent, "cpuset.cpus.partition"), "root"); err != nil {
		c.notes = append(c.notes, fmt.Sprintf("cpuset: %s cannot be a partition root: %v", c.parent, err))
	}
	c.dir = path.Join(c.parent, name)
	if err := c.mkdir(c.dir); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}} {
		if err := c.write(path.Join(c.dir, kv[0]), kv[1]); err != nil {
			return err
		}
	}
	part := path.Join(c.dir, "cpuset.cpus.partition")
	for _, mode := range []string{"isolated", "root"} {
		err := c.write(part, mode)
		// The kernel accepts the write and reports "isolated invalid (…)" when
		// it cannot honour it.
		if got := c.read(part); err == nil && (got == mode || got == "") {
			c.mode = "v2 " + mode
			if mode != "isolated" {
				c.notes = append(c.notes, "cpuset: isolated partition refused; using a root partition (scheduler load balancing stays on)")
			}
			return nil
		}
	}
	_ = c.write(part, "member")
	c.mode = "v2 member"
	c.notes = append(c.notes, "cpuset: partition refused (cpuset.cpus.partition isolated/root invalid); cores are confined but shared with other cgroups")
	return nil
}

func (c *cpuset) setupV1(root, name, cpus string) error {
	c.parent = path.Join(root, "mkrt")
	if err := c.mkdir(c.parent); err != nil {
		return err
	}
	// A new v1 cpuset starts empty: give the parent all of the root's CPUs
	// and memory nodes so the partition's subset is valid.
	mems := c.read(path.Join(root, "cpuset.mems"))
	if mems == "" {
		mems = "0"
	}
	for _, kv := range [][2]string{{"cpuset.cpus", c.read(path.Join(root, "cpuset.cpus"))}, {"cpuset.mems", mems}} {
		if err := c.write(path.Join(c.parent, kv[0]), kv[1]); err != nil {
			return err
		}
	}
	c.dir = path.Join(c.parent, name)
	if err := c.mkdir(c.dir); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"cpuset.cpus", cpus}, {"cpuset.mems", mems}} {
		if err := c.write(path.Join(c.dir, kv[0]), kv[1]); err != nil {
			if kv[0] == "cpuset.cpus" {
				return errors.Join(err, c.heldBy(name, cpus))
			}
			return err
		}
	}
	// Exclusivity needs the parent exclusive too; both may be refused when
	// other cgroups share the CPUs.
	_ = c.write(path.Join(c.parent, "cpuset.cpu_exclusive"), "1")
	if err := c.write(path.Join(c.dir, "cpuset.cpu_exclusive"), "1"); err != nil {
		c.mode = "v1 shared"
		c.notes = append(c.notes, fmt.Sprintf("cpuset: exclusive cpuset refused (%v); cores are confined but shared", errors.Unwrap(err)))
		return nil
	}
	c.mode = "v1 exclusive"
	return nil
}

// attach moves pid into the partition's cgroup.
func (c *cpuset) attach(pid int) error {
	return c.write(path.Join(c.dir, "cgroup.procs"), strconv.Itoa(pid))
}

// remove deletes the partition's cgroup, retrying while it is still busy
// (the exiting child leaves it a moment after it is reaped), bounded by ctx.
// The shared parent is removed when it is empty.
func (c *cpuset) remove(ctx context.Context) error {
	if c.dir == "" {
		return nil
	}
	for {
		err := c.fs.Rmdir(c.dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			break
		}
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("process: cpuset: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process: cpuset: %w (still busy when %v)", err, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := c.fs.Rmdir(c.parent); err != nil && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("process: cpuset: %w", err)
	}
	return nil
}

// heldBy names the sibling cpusets that hold cpus exclusively, the usual
// reason the kernel refuses them (EINVAL): another partition, or one a
// killed supervisor left (empty, with no task).
func (c *cpuset) heldBy(name, cpus string) error {
	want, err := configs.ParseCPUList(cpus)
	if err != nil {
		return nil
	}
	entries, err := c.fs.ReadDir(c.parent)
	if err != nil {
		return nil
	}
	var held []string
	for _, e := range entries {
		dir := path.Join(c.parent, e)
		if e == name || strings.TrimSpace(c.read(path.Join(dir, "cpuset.cpu_exclusive"))) != "1" {
			continue
		}
		theirs, err := configs.ParseCPUList(strings.TrimSpace(c.read(path.Join(dir, "cpuset.cpus"))))
		if err != nil || !slices.ContainsFunc(theirs, func(x int) bool { return slices.Contains(want, x) }) {
			continue
		}
		note := "partition " + e + " holds them"
		if strings.TrimSpace(c.read(path.Join(dir, "tasks"))) == "" {
			note = "the empty cpuset " + dir + " holds them (left by a killed supervisor: mkrt stop " + e + ", or rmdir it)"
		}
		held = append(held, note)
	}
	if len(held) == 0 {
		return nil
	}
	return fmt.Errorf("process: cpuset: cpus %s are taken: %s", cpus, strings.Join(held, "; "))
}
