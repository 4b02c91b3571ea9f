package configs_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

func TestParseBadYAML(t *testing.T) {
	bomb := "x-anchors:\n" + indent(strings.TrimSuffix(bombAnchors(), "\n")) + "\n"
	cases := []struct {
		name string
		src  string
		want []problem
	}{
		{"unknown key with suggestion", "metadata: {name: p}\ntasks:\n  - {name: t, perid: 1ms}\n", []problem{{"3:5", "missing period"}, {"3:15", `unknown key "perid" (did you mean "period"?)`}}},
		{"unknown key without suggestion", "metadata: {name: p}\nplant: x\n", []problem{{"2:1", `unknown key "plant" (known keys: block_types, bridge, devices`}}},
		{"number expected, mapping given", "metadata: {name: p}\ndevices:\n  - {name: d, driver: modbus-tcp, address: \"h:1\", unit_id: {a: 1}}\n", []problem{{"3:60", "unit_id: expected a whole number, got a mapping"}}},
		{"number quoted", "metadata: {name: p}\ndevices:\n  - {name: d, driver: modbus-tcp, address: \"h:1\", retries: \"3\"}\n", []problem{{"3:60", "remove the quotes"}}},
		{"float expected", "metadata: {name: p}\ntags: [{name: x, min: low}]\n", []problem{{"2:23", `min: expected a number, got "low"`}}},
		{"not finite", "metadata: {name: p}\ntags: [{name: x, max: .inf}]\n", []problem{{"2:23", "expected a finite number"}}},
		{"bool expected", "metadata: {name: p}\ntags: [{name: x, writable: yes}]\n", []problem{{"2:28", `writable: expected true or false, got "yes"`}}},
		{"list expected", "metadata: {name: p}\ntags: {name: x}\n", []problem{{"2:7", "tags: expected a list, got a mapping"}}},
		{"mapping expected", "metadata: p\n", []problem{{"1:11", "metadata: expected a mapping of key: value"}}},
		{"duration without unit", "metadata: {name: p}\ntasks: [{name: t, period: 10}]\n", []problem{{"2:27", `duration "10" has no unit`}}},
		{"duration with junk", "metadata: {name: p}\ntasks: [{name: t, period: 1 ms x}]\n", []problem{{"2:27", `bad duration "1 ms x"`}}},
		{"duration as a mapping", "metadata: {name: p}\ntasks: [{name: t, period: {ms: 1}}]\n", []problem{{"2:27", "expected a duration such as 10ms"}}},
		{"bad size", "metadata: {name: p}\npartition: {memory: lots}\n", []problem{{"2:21", `bad size "lots"`}}},
		{"bad cpulist", "metadata: {name: p}\npartition: {cpus: \"1-x\"}\n", []problem{{"2:19", "bad cpulist"}}},
		{"cpulist of a wrong item", "metadata: {name: p}\npartition: {cpus: [1, two]}\n", []problem{{"2:23", `cpus[1]: expected a whole number, got "two"`}}},
		{"duplicate key", "metadata: {name: p}\nlatency:\n  digits: 3\n  digits: 4\n", []problem{{"4:3", `duplicate key "digits" (first written at line 3)`}}},
		{"two documents", "metadata: {name: p}\n---\nmetadata: {name: q}\n", []problem{{"2:1", "a second YAML document starts here"}}},
		{"syntax error", "metadata: {name: p}\ntasks:\n  - name: t\n   period: 1ms\n", []problem{{"2:1", "YAML syntax: did not find expected '-' indicator"}}},
		{"tab indentation", "metadata:\n\tname: p\n", []problem{{"2:1", "YAML syntax"}}},
		{"empty file", "", []problem{{"1:1", "the file is empty"}}},
		{"comments only", "# nothing\n", []problem{{"1:1", "the file is empty"}}},
		{"a list at the top", "- a\n", []problem{{"1:1", "config: expected a mapping"}}},
		{"non-scalar key", "metadata: {name: p}\n? [a]\n: 1\n", []problem{{"2:3", "a key must be a plain name"}}},
		{"alias bomb", "metadata: {name: p}\n" + bomb + "tags:\n  - *h\n", []problem{{"2:1", `unknown key "x-anchors"`}, {"3:6", "expands to more than"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := configs.Parse("bad.yaml", []byte(c.src))
			var errs configs.Errors
			if c.want != nil && !errors.As(err, &errs) {
				t.Fatalf("got %v, want configs.Errors", err)
			}
			if c.name == "unknown key with suggestion" {
				errs = loadErrors(t, "bad.yaml", c.src)
			}
			expect(t, c.src, errs, c.want)
		})
	}
}

// bombAnchors is a "billion laughs" through merge keys: eight levels of
// nine merges each would visit 9^8 mappings.
func bombAnchors() string {
	s := "a: &a {name: x}\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		s += n + ": &" + n + " {<<: [" + strings.Repeat("*"+prev+", ", 8) + "*" + prev + "]}\n"
		prev = n
	}
	return s
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

func TestParseFeatures(t *testing.T) {
	src := `metadata: {name: p}
partition:
  cpus: [1, 2]
  memory: 1Gi
devices:
  - &dev
    name: a
    driver: modbus-tcp
    address: 127.0.0.1:5020
    timeout: 250us
    tags:
      - {name: t1, area: holding, address: 0x10, bit: 0}
  - <<: *dev
    name: b
    tags: []
tags:
  - {name: x, initial: 1_000, min: -1.5e3}
tasks:
  - name: t
    period: 1ms
    cpu: 2
    blocks:
      - name: s
        type: scale
        inputs: {in: x}
        params: {gain: 2, offset: "0.5"}
`
	c, err := configs.Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := []int(c.Partition.CPUs); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("cpus %v", got)
	}
	if c.Partition.Memory != 1<<30 {
		t.Errorf("memory %d", c.Partition.Memory)
	}
	a, b := c.Devices[0], c.Devices[1]
	if a.Timeout.D() != 250*time.Microsecond || a.Tags[0].Address != 16 || a.Tags[0].Bit == nil || *a.Tags[0].Bit != 0 {
		t.Errorf("device a: %+v", a)
	}
	if b.Name != "b" || b.Address != a.Address || b.Timeout != a.Timeout || len(b.Tags) != 0 {
		t.Errorf("merged device b: %+v", b)
	}
	if p := c.Devices[0].Pos; p.File != "f.yaml" || p.Line != 6 || p.Col != 5 {
		t.Errorf("device a at %v, want f.yaml:6:5 (its anchor)", p)
	}
	if got := c.FieldPos(&c.Tasks[0].Period, configs.Pos{}); got.Line != 20 || got.Col != 13 {
		t.Errorf("period at %v, want 20:13", got)
	}
	in := c.Tasks[0].Blocks[0].Inputs["in"]
	if in.Raw != "x" || in.Pos.Line != 25 || in.Pos.Col != 22 {
		t.Errorf("input %+v", in)
	}
	gain := c.Tasks[0].Blocks[0].Params["gain"]
	if f, err := gain.Float(); err != nil || f != 2 || gain.Pos.Line != 26 {
		t.Errorf("gain %+v", gain)
	}
	k, v := c.EntryPos(c.Tasks[0].Blocks[0].Params, "offset", configs.Pos{})
	if k.Line != 26 || k.Col != 27 || v.Col != 35 {
		t.Errorf("offset key %v value %v", k, v)
	}
	if f, _ := c.Tags[0].Initial.Float(); f != 1000 || *c.Tags[0].Min != -1500 {
		t.Errorf("tag %+v", c.Tags[0])
	}
}

func TestDefaults(t *testing.T) {
	c, err := configs.LoadBytes("d.yaml", []byte(`metadata: {name: plant, site: north}
devices:
  - name: d
    driver: modbus-rtu
    address: /dev/ttyUSB0
    tags:
      - {name: c, area: coil, address: 0}
      - {name: h, area: holding, address: 0, type: float32}
      - {name: i, area: input, address: 0, bit: 2}
  - {name: e, driver: modbus-tcp, address: "h:1", unit_id: 0, retries: 0}
tags:
  - {name: s, type: string}
  - {name: f}
tasks:
  - {name: t, period: 10ms}
bridge:
  mqtt: {qos: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Partition
	if p.Board != "generic-x86_64" || p.Backend != configs.BackendProcess || p.Memory != 256<<20 || p.SharedMemory != 4<<20 || p.CPUs.String() != "1" {
		t.Errorf("partition %+v", p)
	}
	d := c.Devices[0]
	if d.UnitID != 1 || d.Timeout.D() != 500*time.Millisecond || d.Poll.D() != 100*time.Millisecond || d.Retries != 1 || d.MaxGap != 8 {
		t.Errorf("device %+v", d)
	}
	if s := d.Serial; s.BaudRate != 19200 || s.DataBits != 8 || s.Parity != "E" || s.StopBits != 1 {
		t.Errorf("serial %+v", s)
	}
	if e := c.Devices[1]; e.UnitID != 0 || e.Retries != 0 || e.Serial.BaudRate != 0 {
		t.Errorf("written zeros must stay zero: %+v", e)
	}
	tags := d.Tags
	if tags[0].Type != tag.Bool || tags[0].Access != tag.ReadWrite ||
		tags[1].Type != tag.Float32 || tags[1].Order != configs.ABCD || *tags[1].Scale != 1 ||
		tags[2].Type != tag.Bool || tags[2].Access != tag.Read {
		t.Errorf("io tags %+v", tags)
	}
	if c.Tags[0].Type != tag.String || c.Tags[0].Length != 32 || c.Tags[1].Type != tag.Float64 {
		t.Errorf("tags %+v", c.Tags)
	}
	task := c.Tasks[0]
	if task.Priority != 80 || task.Overrun != configs.OverrunSkip || task.Commands != 16 || task.CPU == nil || *task.CPU != 1 {
		t.Errorf("task %+v", task)
	}
	if c.Watchdog.Overruns != 3 || c.Watchdog.Heartbeat != 10 {
		t.Errorf("watchdog %+v", c.Watchdog)
	}
	b := c.Bridge
	if b.MQTT.Broker != "embedded" || b.MQTT.Listen != "127.0.0.1:1883" || b.MQTT.QoS != 0 || b.MQTT.KeepAlive.D() != 30*time.Second ||
		b.MQTT.Store.Max != 64<<20 || b.MQTT.ClientID != "mkrt-plant" {
		t.Errorf("mqtt %+v", b.MQTT)
	}
	if !*b.Sparkplug.Enabled || b.Sparkplug.Group != "north" || b.Sparkplug.Node != "plant" || !*b.JSON.Enabled || b.JSON.Prefix != "mkrt" {
		t.Errorf("sparkplug %+v json %+v", b.Sparkplug, b.JSON)
	}
	if m := b.Modbus; m.MaxClients != 16 || m.IdleTimeout.D() != time.Minute || m.UnitID != 1 {
		t.Errorf("modbus %+v", m)
	}
	if l := c.Latency; l.Highest.D() != 100*time.Millisecond || l.Digits != 3 || l.Interval.D() != 10*time.Second {
		t.Errorf("latency %+v", l)
	}
	// Defaults is idempotent and a config built in code gets the same.
	h := c.Hash()
	c.Defaults()
	if c.Hash() != h {
		t.Error("Defaults is not idempotent")
	}
	var empty configs.Config
	empty.Defaults()
	if empty.Bridge.Sparkplug.Group != "mkrt" {
		t.Errorf("group without a site: %q", empty.Bridge.Sparkplug.Group)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := configs.Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "configs: ") {
		t.Fatalf("got %v", err)
	}
}
