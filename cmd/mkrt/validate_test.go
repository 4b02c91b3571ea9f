package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join("..", "..", "configs", "examples", "tank-level.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("metadata: {name: p}\ntasks:\n  - {name: t, period: 10}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := newValidateCmd()
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run(good)
	if err != nil || out != good+": ok\n" {
		t.Fatalf("good file: %q %v", out, err)
	}
	out, err = run(good, bad)
	if exitCode(err) != 1 || !strings.Contains(out, good+": ok\n") || !strings.Contains(out, bad+":3:23: period: duration \"10\" has no unit") {
		t.Fatalf("bad file: %q %v", out, err)
	}
	out, err = run(filepath.Join(dir, "missing.yaml"))
	if exitCode(err) != 1 || !strings.Contains(out, "missing.yaml") {
		t.Fatalf("missing file: %q %v", out, err)
	}
}

func TestValidateRunsChecks(t *testing.T) {
	good := filepath.Join("..", "..", "configs", "examples", "tank-level.yaml")
	check := func(c *configs.Config) error {
		var errs configs.Errors
		errs.Add(c.Tasks[0].Blocks[0].Pos, "block check failed")
		return errs.Err()
	}
	plain := func(*configs.Config) error { return errors.New("not positioned") }
	cmd := newValidateCmd(check, plain)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{good})
	if err := cmd.Execute(); exitCode(err) != 1 {
		t.Fatalf("exit %v", err)
	}
	cfg, err := configs.Load(good)
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.Tasks[0].Blocks[0].Pos.String() + ": block check failed"
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "not positioned") {
		t.Fatalf("output %q", out.String())
	}
}

func TestConfigSchemaCommand(t *testing.T) {
	cmd := newConfigCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"schema"})
	if err := cmd.Execute(); err != nil || !strings.Contains(out.String(), `"$id": "`+configs.SchemaID+`"`) {
		t.Fatalf("%v %q", err, out.String()[:min(200, out.Len())])
	}
}

func TestValidateCompilesBlocks(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "ports.yaml")
	src := "metadata: {name: p}\ntags: [{name: x}]\ntasks:\n  - {name: t, period: 10ms, blocks: [{name: b, type: lag, inputs: {inn: x}}]}\n"
	if err := os.WriteFile(bad, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if bad := validateFiles(&out, []string{bad}, []configs.Check{compileBlocks}); bad != 1 || !strings.Contains(out.String(), "ports.yaml:4:") {
		t.Fatalf("unknown port not reported: %d %q", bad, out.String())
	}
}

// mkrt validate prints configs' problems and the blocks' together, in file
// order, each once.
func TestValidateReportsConfigsAndBlocksTogether(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "plant.yaml")
	src := "metadata: {name: p}\ntags: [{name: x, unit: m}, {name: y, unit: bar}]\ntasks:\n  - name: t\n    period: 10\n    blocks:\n" +
		"      - {name: a, type: pdi}\n" +
		"      - {name: b, type: lag, inputs: {in: nope}}\n" +
		"      - {name: c, type: compare, inputs: {a: x, b: y}, params: {op: gte}}\n"
	if err := os.WriteFile(bad, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n := validateFiles(&out, []string{bad}, []configs.Check{compileBlocks}); n != 1 {
		t.Fatalf("%d invalid", n)
	}
	var at []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		pos, _, _ := strings.Cut(strings.TrimPrefix(line, bad+":"), ": ")
		at = append(at, pos)
	}
	want := []string{"5:13", "7:25", "8:9", "8:43", "9:52", "9:69"}
	if strings.Join(at, " ") != strings.Join(want, " ") {
		t.Fatalf("problems at %v, want %v:\n%s", at, want, out.String())
	}
}

// A second kernel owns the partition's NIC: if a device behind it has safe
// outputs but no watchdog of its own, nobody drives them safe when the
// partition dies; validate warns (and still accepts the config).
func TestValidateWarnsOfUnreachableSafeOutputs(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "configs", "examples", "tank-level.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(text), "backend: process", "backend: multikernel", 1)
	cfg = strings.Replace(cfg, "  cpus: \"1\"\n", "  cpus: \"1\"\n  nics:\n    - {interface: eth9, address: 10.1.0.2/24}\n  kernel: {image: /boot/vmlinuz}\n", 1)
	i := strings.Index(cfg, "    watchdog:\n")
	j := strings.Index(cfg[i:], "    tags:\n")
	noWatchdog := cfg[:i] + cfg[i+j:]
	dir := t.TempDir()
	for _, c := range []struct {
		text string
		warn bool
	}{{noWatchdog, true}, {cfg, false}} {
		f := filepath.Join(dir, "mk.yaml")
		if err := os.WriteFile(f, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if bad := validateFiles(&out, []string{f}, nil); bad != 0 {
			t.Fatalf("invalid: %s", out.String())
		}
		if got := strings.Contains(out.String(), "warning: safe_state of inflow_valve: device tank"); got != c.warn {
			t.Errorf("warning %v, want %v:\n%s", got, c.warn, out.String())
		}
	}
}
