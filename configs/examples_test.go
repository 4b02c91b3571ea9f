package configs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mkrt/mkrt/configs"
)

func examples(t testing.TB) []string {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	return files
}

// clearPos zeroes every Pos so configs from different files compare equal.
func clearPos(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			clearPos(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !f.CanSet() {
				continue
			}
			if f.Type() == reflect.TypeOf(configs.Pos{}) {
				f.Set(reflect.Zero(f.Type()))
				continue
			}
			clearPos(f)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			clearPos(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			clearPos(e)
			v.SetMapIndex(k, e)
		}
	}
}

// exported copies the exported fields (the config without its position
// index) for comparison.
func exported(c *configs.Config) configs.Config {
	return configs.Config{Pos: c.Pos, Metadata: c.Metadata, Partition: c.Partition, Devices: c.Devices, Tags: c.Tags,
		Tasks: c.Tasks, Watchdog: c.Watchdog, Bridge: c.Bridge, Latency: c.Latency}
}

func TestExamplesRoundTrip(t *testing.T) {
	for _, f := range examples(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := configs.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := configs.LoadBytes(f, out)
			if err != nil {
				t.Fatalf("reloading the marshalled config: %v\n%s", err, out)
			}
			a, b := exported(c), exported(again)
			clearPos(reflect.ValueOf(&a).Elem())
			clearPos(reflect.ValueOf(&b).Elem())
			if !reflect.DeepEqual(a, b) {
				t.Errorf("round trip differs:\n%+v\n%+v", a, b)
			}
			if c.Hash() != again.Hash() {
				t.Error("hash differs after the round trip")
			}
		})
	}
}

func TestHashStable(t *testing.T) {
	base := "metadata: {name: p}\ntags: [{name: a}, {name: b}]\nwatchdog:\n  safe_state: {a: 1, b: 2}\ntasks:\n  - {name: t, period: 10ms, blocks: [{name: x, type: scale, inputs: {in: a}, params: {gain: 2, offset: 1}, outputs: {out: b}}]}\n"
	// The same config, laid out differently, with defaults written out.
	same := `# a comment
tasks:
  - name: t
    period: 10000us
    priority: 80
    blocks:
      - name: x
        type: scale
        outputs: {out: b}
        params: {offset: 1, gain: 2}
        inputs: {in: a}
watchdog:
  safe_state: {b: 2, a: 1}
  overruns: 3
tags:
  - {name: a, type: float64}
  - {name: b}
metadata:
  name: p
partition: {board: generic-x86_64, memory: 256Mi}
`
	h := func(src string) [32]byte {
		t.Helper()
		c, err := configs.LoadBytes("h.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash()
	}
	want := h(base)
	for i := 0; i < 20; i++ { // map iteration order differs run to run
		if h(base) != want {
			t.Fatal("hash changes between runs")
		}
	}
	if h(same) != want {
		t.Error("equivalent configs hash differently")
	}
	if h(strings.Replace(base, "gain: 2", "gain: 3", 1)) == want {
		t.Error("a changed parameter does not change the hash")
	}
	if h(strings.Replace(base, "10ms", "20ms", 1)) == want {
		t.Error("a changed period does not change the hash")
	}
	// A config built in code hashes like the same config from a file.
	var c configs.Config
	c.Metadata.Name = "p"
	c.Tags = []configs.Tag{{Name: "a"}, {Name: "b"}}
	c.Watchdog.SafeState = map[string]configs.Value{"a": {Raw: "1", Set: true}, "b": {Raw: "2", Set: true}}
	c.Tasks = []configs.Task{{Name: "t", Period: configs.Duration(10e6), Blocks: []configs.Block{{Name: "x", Type: "scale",
		Inputs: map[string]configs.Ref{"in": {Raw: "a"}}, Outputs: map[string]string{"out": "b"},
		Params: map[string]configs.Value{"gain": {Raw: "2", Set: true}, "offset": {Raw: "1", Set: true}}}}}}
	if c.Hash() != want {
		t.Error("a config built in code hashes differently from the same file")
	}
	// Pinned: a change here changes what both kernels agree on; update it
	// only together with a layout version bump.
	if got := fmt.Sprintf("%x", want); got != pinnedHash {
		t.Errorf("canonical hash changed: %s", got)
	}
}

const pinnedHash = "ebdb47806f45a95debc6252453e1ec63f52841c25ef77357dcc9305dd8a498d4"

func yamlDoc(t *testing.T, f string) any {
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestExamplesMatchSchemaAjv checks the examples with ajv, an independent
// JSON Schema implementation, when npm can install it.
func TestExamplesMatchSchemaAjv(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (needs npm and the network)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("skipping: npm is not installed")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed")
	}
	dir := t.TempDir()
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--silent", "ajv@8", "ajv-formats@3")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("skipping: npm install ajv failed (offline?): %v\n%s", err, out)
	}
	schema, err := configs.Schema(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schema.json"), schema, 0o600); err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, f := range examples(t) {
		j, err := json.Marshal(yamlDoc(t, f))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(f)+".json")
		if err := os.WriteFile(p, j, 0o600); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, p)
	}
	script := `const Ajv = require("ajv/dist/2020"); const fs = require("fs");
const ajv = new Ajv({strict: true, allowUnionTypes: true, allErrors: true});
const validate = ajv.compile(JSON.parse(fs.readFileSync("schema.json")));
let bad = 0;
for (const f of process.argv.slice(1)) {
  if (!validate(JSON.parse(fs.readFileSync(f)))) { bad++; console.log(f, JSON.stringify(validate.errors)); }
}
process.exit(bad ? 1 : 0);`
	run := exec.Command(node, append([]string{"-e", script}, docs...)...)
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("ajv: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"metadata": {"name": "x"}, "tasks": [{"name": "t", "period": "10"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(node, "-e", script, bad)
	check.Dir = dir
	if out, err := check.CombinedOutput(); err == nil {
		t.Fatalf("ajv accepted a period without unit:\n%s", out)
	}
}

// BenchmarkLoad measures parse + defaults + validate of the tank example.
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile("examples/tank-level.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := configs.LoadBytes("tank-level.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash measures the canonical hash of the tank example.
func BenchmarkHash(b *testing.B) {
	c, err := configs.Load("examples/tank-level.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Hash()
	}
}
