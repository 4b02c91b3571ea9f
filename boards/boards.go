// Package boards holds the reference board definitions that partitions are
// planned against: CPU topology, which cores partitions get, the recommended
// host kernel command line, the NICs to dedicate, the kernel to run, and a
// latency budget; and the host readiness check that compares a running host
// with a board (see Check).
//
// Definitions are embedded YAML files, one per board (defs/*.yaml). Users add
// their own board files: a path given to Load, or NAME.yaml in a directory of
// the search path ($MKRT_BOARDS, a colon-separated list, then
// /etc/mkrt/boards). Nothing here needs privileges; the readiness check only
// reads /proc and /sys through an fs.FS.
package boards

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Board is one reference board.
type Board struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Arch        string `yaml:"arch"` // GOARCH-style: amd64, arm64
	// CPUs is how many logical CPUs the board has.
	CPUs int `yaml:"cpus"`
	// PartitionCPUs are the cores given to partitions by default.
	PartitionCPUs []int `yaml:"partition_cpus"`
	// MinPeriod is the shortest task period the board sustains.
	MinPeriod time.Duration `yaml:"min_period"`
	// Budget is the expected worst-case wake-up latency.
	Budget time.Duration `yaml:"budget"`

	// BudgetNote says where the budget comes from; budgets are nominal.
	BudgetNote string `yaml:"budget_note"`
	// Topology is the CPU topology: cores and SMT siblings.
	Topology Topology `yaml:"topology"`
	// HousekeepingCPUs keep the general kernel's work: IRQs, RCU callbacks, timers.
	HousekeepingCPUs []int `yaml:"housekeeping_cpus"`
	// Cmdline is the recommended host kernel command line, one argument each.
	Cmdline []Setting `yaml:"cmdline"`
	// Firmware is BIOS/UEFI settings or, on a Raspberry Pi, config.txt lines.
	Firmware []Setting `yaml:"firmware"`
	// Governor is the cpufreq governor partition cores should run.
	Governor string `yaml:"governor"`
	// Kernel is the PREEMPT_RT kernel to install.
	Kernel Kernel `yaml:"kernel"`
	// NICs are the network interfaces to dedicate to partitions.
	NICs []NIC `yaml:"nics"`
	// Notes are further advice, one paragraph each.
	Notes []string `yaml:"notes"`

	// Source is where the definition came from: "builtin" or a file path.
	Source string `yaml:"-"`
}

// Topology is a board's CPU topology.
type Topology struct {
	// Cores is the number of physical cores.
	Cores int `yaml:"cores"`
	// ThreadsPerCore is the SMT width: 1 without SMT, 2 with hyper-threading.
	ThreadsPerCore int `yaml:"threads_per_core"`
	// Siblings lists the logical CPUs sharing one core, where known.
	Siblings [][]int `yaml:"siblings"`
}

// Setting is one recommended setting and why.
type Setting struct {
	Value string `yaml:"value"`
	Why   string `yaml:"why"`
}

// Kernel names the PREEMPT_RT kernel for a board.
type Kernel struct {
	// Package is the distribution package, e.g. linux-image-rt-amd64.
	Package string `yaml:"package"`
	// Config lists kernel configuration options the kernel must have.
	Config []string `yaml:"config"`
	Notes  string   `yaml:"notes"`
}

// NIC is a network interface to dedicate to partitions.
type NIC struct {
	Name   string `yaml:"name"`
	Driver string `yaml:"driver"`
	Notes  string `yaml:"notes"`
}

// Default is the board used when a config names none.
const Default = "generic-x86_64"

// SystemDir is the system-wide directory of user board files.
const SystemDir = "/etc/mkrt/boards"

// EnvDirs is the environment variable holding further board directories.
const EnvDirs = "MKRT_BOARDS"

// ErrUnknown is returned (wrapped) when no board has the asked name.
var ErrUnknown = errors.New("unknown board")

// ErrInvalid is returned (wrapped) for a board file that does not parse or validate.
var ErrInvalid = errors.New("invalid board definition")

//go:embed defs/*.yaml
var defs embed.FS

// builtin is parsed once from the embedded files and never changed;
// errBuiltin is why an embedded file did not parse (the tests keep it nil).
var builtin, errBuiltin = parseFS(defs, "defs", "builtin")

func parseFS(fsys fs.FS, dir, source string) (map[string]Board, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	m := make(map[string]Board, len(names))
	var errs []error
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("boards: %w", err))
			continue
		}
		b, err := Parse(data, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.Source = source
		m[b.Name] = b
	}
	return m, errors.Join(errs...)
}

// Lookup returns the named built-in board.
func Lookup(name string) (Board, error) {
	b, ok := builtin[name]
	if !ok {
		if errBuiltin != nil {
			return Board{}, fmt.Errorf("boards: %w %q (known: %v): %w", ErrUnknown, name, Names(), errBuiltin)
		}
		return Board{}, fmt.Errorf("boards: %w %q (known: %v)", ErrUnknown, name, Names())
	}
	return b.clone(), nil
}

// Names lists the built-in boards.
func Names() []string {
	n := make([]string, 0, len(builtin))
	for k := range builtin {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Builtin returns every built-in board, sorted by name.
func Builtin() []Board {
	out := make([]Board, 0, len(builtin))
	for _, n := range Names() {
		out = append(out, builtin[n].clone())
	}
	return out
}

func (b Board) clone() Board {
	b.PartitionCPUs = append([]int(nil), b.PartitionCPUs...)
	b.HousekeepingCPUs = append([]int(nil), b.HousekeepingCPUs...)
	b.Cmdline = append([]Setting(nil), b.Cmdline...)
	b.Firmware = append([]Setting(nil), b.Firmware...)
	b.NICs = append([]NIC(nil), b.NICs...)
	b.Notes = append([]string(nil), b.Notes...)
	b.Kernel.Config = append([]string(nil), b.Kernel.Config...)
	sib := make([][]int, len(b.Topology.Siblings))
	for i, s := range b.Topology.Siblings {
		sib[i] = append([]int(nil), s...)
	}
	b.Topology.Siblings = sib
	return b
}

// Load reads one board file. The file must name its board and validate.
func Load(file string) (Board, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Board{}, fmt.Errorf("boards: %w", err)
	}
	b, err := Parse(data, file)
	if err != nil {
		return Board{}, err
	}
	b.Source = file
	return b, nil
}

// Parse decodes a board definition; unknown keys are errors. name is used in
// messages only.
func Parse(data []byte, name string) (Board, error) {
	var b Board
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return Board{}, fmt.Errorf("boards: %s: %w: empty file", name, ErrInvalid)
		}
		return Board{}, fmt.Errorf("boards: %s: %w: %w", name, ErrInvalid, err)
	}
	if err := b.Validate(); err != nil {
		return Board{}, fmt.Errorf("boards: %s: %w", name, err)
	}
	return b, nil
}

// Validate reports every inconsistency in a board definition at once.
func (b Board) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if b.Name == "" || strings.ContainsAny(b.Name, "/ \t") {
		bad("name %q must be a non-empty word without '/' or spaces", b.Name)
	}
	switch b.Arch {
	case "amd64", "arm64", "arm", "386", "riscv64":
	default:
		bad("arch %q: want amd64, arm64, arm, 386 or riscv64", b.Arch)
	}
	if b.CPUs < 1 {
		bad("cpus must be at least 1")
	}
	if len(b.PartitionCPUs) == 0 {
		bad("partition_cpus must name at least one CPU")
	}
	for _, c := range append(append([]int(nil), b.PartitionCPUs...), b.HousekeepingCPUs...) {
		if c < 0 || c >= b.CPUs {
			bad("cpu %d is outside 0-%d", c, b.CPUs-1)
		}
	}
	for _, c := range b.PartitionCPUs {
		if containsInt(b.HousekeepingCPUs, c) {
			bad("cpu %d is both a partition and a housekeeping cpu", c)
		}
	}
	if b.MinPeriod <= 0 {
		bad("min_period must be positive")
	}
	if b.Budget <= 0 {
		bad("budget must be positive")
	}
	if b.Topology.ThreadsPerCore < 0 || b.Topology.Cores < 0 {
		bad("topology counts must not be negative")
	}
	// The isolation arguments must isolate exactly the partition cores.
	for _, key := range []string{"isolcpus", "nohz_full", "rcu_nocbs"} {
		v, ok := b.CmdlineValue(key)
		if !ok {
			continue
		}
		cpus, err := ParseCPUList(stripIsolFlags(v))
		if err != nil {
			bad("cmdline %s=%s: %v", key, v, err)
			continue
		}
		if !sameInts(cpus, b.PartitionCPUs) {
			bad("cmdline %s=%s does not match partition_cpus %s", key, v, FormatCPUList(b.PartitionCPUs))
		}
	}
	return errors.Join(errs...)
}

// CmdlineString is the recommended kernel command line as one string.
func (b Board) CmdlineString() string {
	parts := make([]string, len(b.Cmdline))
	for i, s := range b.Cmdline {
		parts[i] = s.Value
	}
	return strings.Join(parts, " ")
}

// CmdlineValue returns the value of key=value in the recommended command line.
func (b Board) CmdlineValue(key string) (string, bool) {
	for _, s := range b.Cmdline {
		if k, v, ok := strings.Cut(s.Value, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// stripIsolFlags drops isolcpus' leading flags (nohz, domain, managed_irq).
func stripIsolFlags(v string) string {
	for {
		head, rest, ok := strings.Cut(v, ",")
		if !ok {
			return v
		}
		switch head {
		case "nohz", "domain", "managed_irq":
			v = rest
		default:
			return v
		}
	}
}

// Catalog finds boards by name: user files in Dirs first, then the built-in set.
type Catalog struct {
	// Dirs are searched in order for NAME.yaml.
	Dirs []string
}

// SearchDirs is the board search path: each directory in $MKRT_BOARDS
// (colon-separated), then /etc/mkrt/boards. getenv is os.Getenv in production.
func SearchDirs(getenv func(string) string) []string {
	var dirs []string
	for _, d := range filepath.SplitList(getenv(EnvDirs)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return append(dirs, SystemDir)
}

// Lookup returns a board by name or by file path (a name containing a path
// separator or ending in .yaml/.yml is a path).
func (c Catalog) Lookup(name string) (Board, error) {
	if strings.ContainsRune(name, os.PathSeparator) || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return Load(name)
	}
	for _, d := range c.Dirs {
		for _, ext := range []string{".yaml", ".yml"} {
			f := filepath.Join(d, name+ext)
			if _, err := os.Stat(f); err == nil {
				return Load(f)
			}
		}
	}
	if b, ok := builtin[name]; ok {
		return b.clone(), nil
	}
	names, _ := c.All()
	known := make([]string, len(names))
	for i, b := range names {
		known[i] = b.Name
	}
	return Board{}, fmt.Errorf("boards: %w %q (known: %v; search path %v)", ErrUnknown, name, known, c.Dirs)
}

// All lists every board, user files overriding built-ins of the same name,
// sorted by name. Board files that fail to load are returned as errors next
// to the boards that did load; a missing directory is not an error.
func (c Catalog) All() ([]Board, error) {
	m := make(map[string]Board, len(builtin))
	for k, b := range builtin {
		m[k] = b.clone()
	}
	var errs []error
	// Later directories have lower precedence: walk them first.
	for i := len(c.Dirs) - 1; i >= 0; i-- {
		ents, err := os.ReadDir(c.Dirs[i])
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("boards: %w", err))
			}
			continue
		}
		for _, e := range ents {
			ext := filepath.Ext(e.Name())
			if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
				continue
			}
			b, err := Load(filepath.Join(c.Dirs[i], e.Name()))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			m[b.Name] = b
		}
	}
	out := make([]Board, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errors.Join(errs...)
}

// Marshal renders a board as YAML, in the same schema Load reads.
func Marshal(b Board) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(b); err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	return buf.Bytes(), nil
}
