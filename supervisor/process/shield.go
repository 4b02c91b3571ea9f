package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// ShieldName is the cpuset cgroup (v1) that holds every other process
// while a shield is up.
const ShieldName = "mkrt-shield"

// Shield keeps every other user-space process off cpus, as `cset shield`
// does: under cgroup v1 it makes a cpuset of the remaining CPUs
// (<root>/cpuset/mkrt-shield) and moves every process of the root cpuset
// into it, except the processes in keep (and their threads). Processes
// those start later inherit the root cpuset; processes the others start
// inherit the shield's. Kernel threads stay where they are (per-CPU ones
// cannot move); IRQ affinity is not touched.
//
// Under cgroup v2 an isolated cpuset partition does this for the
// partition's own cgroup (mkrt run), so Shield refuses with ErrUnsupported.
// Release moves the processes back.
func Shield(fsys FS, cgroupRoot string, cpus []int, keep ...int) (*Shielded, error) {
	if b, err := fsys.ReadFile(path.Join(cgroupRoot, "cgroup.controllers")); err == nil && hasWord(string(b), "cpuset") {
		return nil, fmt.Errorf("process: shield: cgroup v2: %w; an isolated cpuset partition (cpuset.cpus.partition=isolated) or isolcpus= keeps other processes off the measured CPUs there", ErrUnsupported)
	}
	root := path.Join(cgroupRoot, "cpuset")
	all, err := configs.ParseCPUList(strings.TrimSpace(string(must(fsys.ReadFile(path.Join(root, "cpuset.cpus"))))))
	if err != nil || len(all) == 0 {
		return nil, fmt.Errorf("process: shield: no v1 cpuset hierarchy at %s (%v): %w", root, err, ErrUnsupported)
	}
	rest := slices.DeleteFunc(slices.Clone(all), func(c int) bool { return slices.Contains(cpus, c) })
	if len(rest) == 0 {
		return nil, fmt.Errorf("process: shield: CPUs %v are every CPU (%v): nothing is left for the other processes", cpus, all)
	}
	s := &Shielded{fs: fsys, root: root, dir: path.Join(root, ShieldName)}
	if err := fsys.Mkdir(s.dir); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("process: shield: %w", err)
	}
	mems := strings.TrimSpace(string(must(fsys.ReadFile(path.Join(root, "cpuset.mems")))))
	if mems == "" {
		mems = "0"
	}
	for _, kv := range [][2]string{{"cpuset.cpus", configs.CPUList(rest).String()}, {"cpuset.mems", mems}} {
		if err := fsys.WriteFile(path.Join(s.dir, kv[0]), []byte(kv[1])); err != nil {
			s.Release()
			return nil, fmt.Errorf("process: shield: %s: %w", kv[0], err)
		}
	}
	pids, err := procs(fsys, root)
	if err != nil {
		s.Release()
		return nil, err
	}
	for _, pid := range pids {
		if slices.Contains(keep, pid) || kernelThread(pid) {
			continue
		}
		// A process that ended meanwhile (ESRCH) or one the kernel will not
		// move is left; the shield is best effort per process.
		if fsys.WriteFile(path.Join(s.dir, "cgroup.procs"), []byte(strconv.Itoa(pid))) == nil {
			s.Moved++
		}
	}
	s.CPUs = rest
	return s, nil
}

// Shielded is a shield that is up.
type Shielded struct {
	fs        FS
	root, dir string
	// Moved counts the processes moved to the other CPUs.
	Moved int
	// CPUs are the CPUs the other processes keep.
	CPUs []int
}

// String says what the shield did, for a run's report.
func (s *Shielded) String() string {
	return fmt.Sprintf("shield: %d processes moved to CPUs %s (cpuset %s)", s.Moved, configs.CPUList(s.CPUs), s.dir)
}

// Release moves every process of the shield back to the root cpuset and
// removes the shield.
func (s *Shielded) Release() error {
	var errs []error
	for range 3 { // processes forked while moving them back
		pids, err := procs(s.fs, s.dir)
		if err != nil || len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if err := s.fs.WriteFile(path.Join(s.root, "cgroup.procs"), []byte(strconv.Itoa(pid))); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("pid %d: %w", pid, err))
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for {
		err := s.fs.Rmdir(s.dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			break
		}
		if !errors.Is(err, syscall.EBUSY) || ctx.Err() != nil {
			errs = append(errs, err)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("process: shield: release: %w", err)
	}
	return nil
}

// procs lists the processes of a v1 cgroup.
func procs(fsys FS, dir string) ([]int, error) {
	b, err := fsys.ReadFile(path.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("process: shield: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// kernelThread reports whether pid is a kernel thread (kthreadd or one of
// its children; they have no command line).
func kernelThread(pid int) bool {
	if pid == 2 {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 1 && f[1] == "2"
}

func must(b []byte, _ error) []byte { return b }
