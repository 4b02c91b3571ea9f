package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/supervisor/jailhouse"
)

const tankExample = "../../configs/examples/tank-level.yaml"

func TestPartitionConfigJailhouse(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tank.cell")
	text, err := runSubcommand(t, newPartitionCmd(), "config", "--backend", "jailhouse", tankExample, "--out", out, "--sysfs", t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for _, want := range []string{
		`cell "tank-level" (Jailhouse v0.12, config revision 12, 424 bytes)`,
		"cpus            1 (cpu_set_size 8)",
		"ivshmem 0000:00:0e.0 read-write section",
		"memmap=0x10401000$0x3a000000",
		".shmem_dev_id = 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jailhouse.Decode(raw)
	if err != nil || c.Name != "tank-level" {
		t.Fatalf("written cell: %+v, %v", c, err)
	}
	if _, err := runSubcommand(t, newPartitionCmd(), "config", "--backend", "jailhouse", "--memory-base", "0x1001", tankExample); err == nil {
		t.Error("unaligned --memory-base accepted")
	}
	if _, err := runSubcommand(t, newPartitionCmd(), "config", tankExample); err == nil {
		t.Error("the process backend has no generated config, but no error")
	}
}

// TestPartitionConfigMultikernel reviews a multikernel instance on a host
// without multikernel support: the pool comes from the flags.
func TestPartitionConfigMultikernel(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	cpuinfo := "processor\t: 0\napicid\t\t: 0\n\nprocessor\t: 1\napicid\t\t: 2\n\n"
	if err := os.WriteFile(filepath.Join(root, "proc/cpuinfo"), []byte(cpuinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"config", "--backend", "multikernel", tankExample, "--host-root", root}
	if _, err := runSubcommand(t, newPartitionCmd(), args...); err == nil {
		t.Fatal("no pool and no --pool-base: want an error")
	}
	out := filepath.Join(t.TempDir(), "tank.dtbo")
	text, err := runSubcommand(t, newPartitionCmd(), append(args, "--pool-base", "0x100000000", "--pool-size", "1Gi", "--out", out)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !strings.Contains(text, `instance-name = "tank-level"`) || !strings.Contains(text, "cpus = /bits/ 64 <2>") {
		t.Errorf("dts:\n%s", text)
	}
	if b, err := os.ReadFile(out); err != nil || len(b) < 40 || b[0] != 0xd0 || b[1] != 0x0d {
		t.Errorf("overlay file: %d bytes, %v", len(b), err)
	}
}
