package boards

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuiltinBoardsParseAndValidate(t *testing.T) {
	if errBuiltin != nil {
		t.Fatalf("embedded board files: %v", errBuiltin)
	}
	want := []string{"generic-x86_64", "qemu-x86_64", "rpi4", "rpi5"}
	if got := Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, b := range Builtin() {
		if err := b.Validate(); err != nil {
			t.Errorf("%s: %v", b.Name, err)
		}
		if b.Kernel.Package == "" || len(b.NICs) == 0 || b.BudgetNote == "" || !strings.Contains(b.BudgetNote, "nominal") {
			t.Errorf("%s: kernel package, NICs and a nominal budget note are required", b.Name)
		}
		for _, key := range []string{"isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity"} {
			if _, ok := b.CmdlineValue(key); !ok {
				t.Errorf("%s: recommended cmdline lacks %s", b.Name, key)
			}
		}
		if b.Source != "builtin" {
			t.Errorf("%s: source %q", b.Name, b.Source)
		}
	}
	if _, err := Lookup(Default); err != nil {
		t.Fatal(err)
	}
}

func TestPiCmdline(t *testing.T) {
	for _, n := range []string{"rpi4", "rpi5"} {
		b, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.CmdlineString(); !strings.HasPrefix(got, "isolcpus=3 nohz_full=3 rcu_nocbs=3 irqaffinity=0-2") {
			t.Errorf("%s cmdline = %q", n, got)
		}
		found := false
		for _, f := range b.Firmware {
			found = found || f.Value == "force_turbo=1"
		}
		if !found {
			t.Errorf("%s: no force_turbo=1 config.txt note", n)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("nope")
	if !errors.Is(err, ErrUnknown) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
}

func TestLookupReturnsCopy(t *testing.T) {
	a, _ := Lookup("rpi4")
	a.PartitionCPUs[0] = 0
	a.Cmdline[0].Value = "x"
	b, _ := Lookup("rpi4")
	if b.PartitionCPUs[0] != 3 || b.Cmdline[0].Value != "isolcpus=3" {
		t.Fatal("Lookup shares slices with the built-in table")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, b := range Builtin() {
		data, err := Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data, b.Name)
		if err != nil {
			t.Fatalf("%s: %v\n%s", b.Name, err, data)
		}
		if got.Budget != b.Budget || got.MinPeriod != b.MinPeriod || got.CmdlineString() != b.CmdlineString() {
			t.Errorf("%s: round trip changed the board", b.Name)
		}
	}
}

const userBoard = `name: my-ipc
description: plant floor box PC
arch: amd64
cpus: 8
topology: {cores: 4, threads_per_core: 2, siblings: [[0,4],[1,5],[2,6],[3,7]]}
partition_cpus: [2, 3]
housekeeping_cpus: [0, 1]
min_period: 250us
budget: 80us
budget_note: nominal
cmdline:
  - value: isolcpus=managed_irq,domain,2-3
  - value: nohz_full=2,3
kernel: {package: linux-image-rt-amd64}
`

func TestLoadAndCatalog(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "my-ipc.yaml")
	if err := os.WriteFile(f, []byte(userBoard), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if b.Budget != 80*time.Microsecond || b.MinPeriod != 250*time.Microsecond || FormatCPUList(b.PartitionCPUs) != "2-3" || b.Source != f {
		t.Fatalf("loaded %+v", b)
	}
	c := Catalog{Dirs: []string{filepath.Join(dir, "missing"), dir}}
	if got, err := c.Lookup("my-ipc"); err != nil || got.Name != "my-ipc" {
		t.Fatalf("catalog lookup: %v %v", got.Name, err)
	}
	if got, err := c.Lookup(f); err != nil || got.Name != "my-ipc" {
		t.Fatalf("lookup by path: %v", err)
	}
	if got, err := c.Lookup("rpi5"); err != nil || got.Source != "builtin" {
		t.Fatalf("built-in via catalog: %v", err)
	}
	if _, err := c.Lookup("other"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	all, err := c.All()
	if err != nil || len(all) != 5 {
		t.Fatalf("All: %d boards, %v", len(all), err)
	}
	// A broken file is reported but does not hide the others.
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: bad\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	all, err = c.All()
	if !errors.Is(err, ErrInvalid) || len(all) != 5 {
		t.Fatalf("All with a bad file: %d, %v", len(all), err)
	}
}

func TestSearchDirs(t *testing.T) {
	env := map[string]string{EnvDirs: "/a:/b"}
	got := SearchDirs(func(k string) string { return env[k] })
	if strings.Join(got, " ") != "/a /b "+SystemDir {
		t.Fatalf("SearchDirs = %v", got)
	}
	if got := SearchDirs(func(string) string { return "" }); len(got) != 1 || got[0] != SystemDir {
		t.Fatalf("SearchDirs without env = %v", got)
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]string{
		"empty":            "",
		"unknown key":      userBoard + "colour: red\n",
		"cpu outside":      strings.Replace(userBoard, "partition_cpus: [2, 3]", "partition_cpus: [9]", 1),
		"isolcpus differs": strings.Replace(userBoard, "nohz_full=2,3", "nohz_full=3", 1),
		"overlap":          strings.Replace(userBoard, "housekeeping_cpus: [0, 1]", "housekeeping_cpus: [0, 2]", 1),
		"no budget":        strings.Replace(userBoard, "budget: 80us", "budget: 0s", 1),
		"bad duration":     strings.Replace(userBoard, "budget: 80us", "budget: fast", 1),
		"bad arch":         strings.Replace(userBoard, "arch: amd64", "arch: z80", 1),
		"not yaml":         "\x00\x01[",
	}
	for name, text := range cases {
		if _, err := Parse([]byte(text), name); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestCPUList(t *testing.T) {
	cases := []struct {
		in, out string
		bad     bool
	}{
		{"", "", false}, {"(null)", "", false}, {"3", "3", false}, {"0-2,5", "0-2,5", false},
		{"1,3,2", "1-3", false}, {"0-7:2", "0,2,4,6", false}, {"0-7:2/4", "0,2,4,6", false},
		{"3-1", "", true}, {"a", "", true}, {"-1", "", true}, {"0-99999999", "", true},
	}
	for _, c := range cases {
		got, err := ParseCPUList(c.in)
		if (err != nil) != c.bad {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if !c.bad && FormatCPUList(got) != c.out {
			t.Errorf("%q -> %q, want %q", c.in, FormatCPUList(got), c.out)
		}
	}
	m, err := ParseCPUMask("00000000,00000005")
	if err != nil || FormatCPUList(m) != "0,2" {
		t.Fatalf("mask: %v %v", m, err)
	}
	if _, err := ParseCPUMask("xyz"); !errors.Is(err, ErrCPUList) {
		t.Fatal("bad mask accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(userBoard))
	f.Add([]byte("cmdline: [{value: isolcpus=}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data, "fuzz")
		if err == nil {
			_ = b.CmdlineString()
		}
	})
}
