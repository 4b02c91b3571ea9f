package configs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// problem is one expected error: its line:col and a piece of its message.
type problem struct {
	at   string
	want string
}

// loadErrors loads src and returns its errors as configs.Errors.
func loadErrors(t *testing.T, name, src string) configs.Errors {
	t.Helper()
	_, err := configs.LoadBytes(name, []byte(src))
	if err == nil {
		return nil
	}
	var errs configs.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is not configs.Errors: %T %v", err, err)
	}
	return errs
}

// expect checks that errs are exactly the wanted problems, in order; on a
// mismatch it shows the source line with a caret under the reported place.
func expect(t *testing.T, src string, errs configs.Errors, want []problem) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), errs)
	}
	lines := strings.Split(src, "\n")
	for i, w := range want {
		e := errs[i]
		at := fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Col)
		if at != w.at || !strings.Contains(e.Msg, w.want) {
			show := ""
			if l := e.Pos.Line - 1; l >= 0 && l < len(lines) && e.Pos.Col > 0 {
				show = "\n" + lines[l] + "\n" + strings.Repeat(" ", e.Pos.Col-1) + "^"
			}
			t.Errorf("problem %d: got %s: %s\nwant %s: …%s…%s", i, at, e.Msg, w.at, w.want, show)
		}
	}
}

// header is a minimal valid config; cases append to it from line 2.
const header = "metadata: {name: p}\n"

func TestValidateRules(t *testing.T) {
	dev := func(tags string) string {
		return header + "devices:\n  - name: d\n    driver: modbus-tcp\n    address: 127.0.0.1:5020\n    tags:\n" + tags
	}
	cases := []struct {
		name string
		src  string
		want []problem
	}{
		{"valid minimal", header, nil},
		{"bad tag name with dot", header + "tags:\n  - name: a.b\n", []problem{{"3:11", "cannot contain one"}}},
		{"bad metadata name", "metadata: {name: my plant}\n", []problem{{"1:18", "not a valid name"}}},
		{"duplicate tag across device and internal", dev("      - {name: x, area: coil, address: 0}\n") + "tags:\n  - name: x\n",
			[]problem{{"9:11", `tag "x" is defined twice (first at testdata/x.yaml:7:16)`}}},
		{"duplicate device", header + "devices:\n  - {name: d, driver: modbus-tcp, address: \"h:1\"}\n  - {name: d, driver: modbus-tcp, address: \"h:2\"}\n",
			[]problem{{"4:12", `device "d" is defined twice`}}},
		{"duplicate task", header + "tasks:\n  - {name: t, period: 10ms}\n  - {name: t, period: 10ms}\n", []problem{{"4:12", `task "t" is defined twice`}}},
		{"duplicate block across tasks", header + "tasks:\n  - {name: a, period: 10ms, blocks: [{name: b, type: not, inputs: {in: true}}]}\n  - {name: c, period: 10ms, blocks: [{name: b, type: not, inputs: {in: true}}]}\n",
			[]problem{{"4:45", `block "b" is defined twice`}}},
		{"unknown backend", header + "partition: {backend: procss}\n", []problem{{"2:22", `unknown backend "procss" (did you mean "process"?)`}}},
		{"unknown driver", header + "devices:\n  - {name: d, driver: modbus, address: \"h:1\"}\n", []problem{{"3:23", `unknown driver "modbus"`}}},
		{"missing driver and address", header + "devices:\n  - {name: d}\n", []problem{{"3:5", "missing driver"}, {"3:5", "missing address"}}},
		{"unknown area", dev("      - {name: x, area: coils, address: 0}\n"), []problem{{"7:25", `unknown area "coils" (did you mean "coil"?)`}}},
		{"unknown order", dev("      - {name: x, area: holding, address: 0, type: float32, order: ADCB}\n"), []problem{{"7:68", `unknown order "ADCB"`}}},
		{"unknown access", dev("      - {name: x, area: holding, address: 0, access: rw}\n"), []problem{{"7:54", `unknown access "rw"`}}},
		{"unknown overrun", header + "tasks:\n  - {name: t, period: 10ms, overrun: catchup}\n", []problem{{"3:38", `unknown overrun "catchup" (did you mean "catch_up"?)`}}},
		{"unknown data type", header + "tags:\n  - {name: x, type: float}\n", []problem{{"3:21", `unknown type "float"`}}},
		{"unit id range", header + "devices:\n  - {name: d, driver: modbus-tcp, address: \"h:1\", unit_id: 300}\n", []problem{{"3:60", "unit_id 300 is outside 0-247"}}},
		{"bit on a coil", dev("      - {name: x, area: coil, address: 0, bit: 3}\n"), []problem{{"7:48", "bit applies to holding and input registers only"}}},
		{"bit out of range", dev("      - {name: x, area: holding, address: 0, bit: 16}\n"), []problem{{"7:51", "bit 16 is outside 0-15"}}},
		{"bit with a number type", dev("      - {name: x, area: holding, address: 0, bit: 1, type: int16}\n"), []problem{{"7:60", "a register bit is a bool"}}},
		{"string needs length", dev("      - {name: x, area: holding, address: 0, type: string}\n"), []problem{{"7:9", "a string tag needs length"}}},
		{"coil must be bool", dev("      - {name: x, area: coil, address: 0, type: uint16}\n"), []problem{{"7:49", "its type must be bool"}}},
		{"write to input register", dev("      - {name: x, area: input, address: 0, access: write}\n"), []problem{{"7:52", "read-only on Modbus"}}},
		{"missing address", dev("      - {name: x, area: coil}\n"), []problem{{"7:9", "missing address"}}},
		{"address beyond the area", dev("      - {name: x, area: holding, address: 65535, type: float32}\n"), []problem{{"7:43", "outside 0-65535"}}},
		{"overlapping registers", dev("      - {name: a, area: holding, address: 10, type: float32}\n      - {name: b, area: holding, address: 11}\n"),
			[]problem{{"8:43", "tag b (holding 11) overlaps tag a (holding 10-11) on device d; move it to address 12"}}},
		{"bits share a register", dev("      - {name: a, area: holding, address: 1, bit: 0}\n      - {name: b, area: holding, address: 1, bit: 1}\n"), nil},
		{"same bit twice", dev("      - {name: a, area: holding, address: 1, bit: 0}\n      - {name: b, area: holding, address: 1, bit: 0}\n"),
			[]problem{{"8:43", "uses bit 0 of holding 1, as does tag a"}}},
		{"bit inside a whole register", dev("      - {name: a, area: input, address: 1}\n      - {name: b, area: input, address: 1, bit: 0}\n"),
			[]problem{{"8:41", "overlaps tag a"}}},
		{"same address in other areas", dev("      - {name: a, area: holding, address: 0}\n      - {name: b, area: input, address: 0}\n      - {name: c, area: coil, address: 0}\n"), nil},
		{"unknown board", header + "partition: {board: rpi6}\n", []problem{{"2:20", `unknown board "rpi6"`}}},
		{"cpu outside board", header + "partition: {board: qemu-x86_64, cpus: \"1-2\"}\n", []problem{{"2:39", "CPU 2 is outside board qemu-x86_64"}, {"2:39", "takes all 2 CPUs"}}},
		{"task cpu outside partition", header + "partition: {cpus: [1, 2]}\ntasks:\n  - {name: t, period: 10ms, cpu: 3}\n", []problem{{"4:34", "cpu 3 is not one of the partition's CPUs (1-2)"}}},
		{"period below board minimum", header + "partition: {board: qemu-x86_64}\ntasks:\n  - {name: t, period: 100us}\n", []problem{{"4:23", "period 100µs is shorter than board qemu-x86_64 sustains (500µs)"}}},
		{"missing period", header + "tasks:\n  - {name: t}\n", []problem{{"3:5", "missing period"}}},
		{"zero period", header + "tasks:\n  - {name: t, period: 0}\n", []problem{{"3:23", "period must be positive"}}},
		{"priority out of range", header + "tasks:\n  - {name: t, period: 1ms, priority: 120}\n", []problem{{"3:38", "priority 120 is outside 1-99"}}},
		{"priority zero", header + "tasks:\n  - {name: t, period: 1ms, priority: 0}\n", []problem{{"3:38", "priority 0 is outside 1-99"}}},
		{"min above max", header + "tags:\n  - {name: x, min: 5, max: 1}\n", []problem{{"3:20", "min 5 is above max 1"}}},
		{"initial not a number", header + "tags:\n  - {name: x, initial: warm}\n", []problem{{"3:24", `"warm" is not a number`}}},
		{"initial outside min/max", header + "tags:\n  - {name: x, initial: 7, min: 0, max: 5}\n", []problem{{"3:24", "tag x: initial value: 7 is above max 5"}}},
		{"initial out of the type's range", header + "tags:\n  - {name: x, type: uint16, initial: -1}\n", []problem{{"3:38", "outside the range of uint16"}}},
		{"initial not whole", header + "tags:\n  - {name: x, type: int32, initial: 1.5}\n", []problem{{"3:37", "not a whole number"}}},
		{"initial not a bool", header + "tags:\n  - {name: x, type: bool, initial: 2}\n", []problem{{"3:36", "is not a boolean"}}},
		{"initial string too long", header + "tags:\n  - {name: x, type: string, length: 2, initial: abc}\n", []problem{{"3:49", "3 bytes is longer than the tag's length 2"}}},
		{"block input unknown tag", header + "tags: [{name: y}]\ntasks:\n  - {name: t, period: 1ms, blocks: [{name: b, type: lag, inputs: {in: lvl}, outputs: {out: y}}]}\n",
			[]problem{{"4:71", `input in reads unknown tag "lvl"`}}},
		{"block input from another task", header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: true}}]}\n  - {name: u, period: 1ms, blocks: [{name: b, type: not, inputs: {in: a.out}}]}\n",
			[]problem{{"4:71", "reads block a of task t"}}},
		{"block input unknown block", header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: b, type: not, inputs: {in: c.out}}]}\n",
			[]problem{{"3:71", `there is no block "c"`}}},
		{"block input literal and port", header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: -1.5e3}}, {name: b, type: not, inputs: {in: a.out}}]}\n", nil},
		{"block output unknown tag", header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: not, inputs: {in: true}, outputs: {out: nope}}]}\n",
			[]problem{{"3:93", `output out writes unknown tag "nope"`}}},
		{"block output to a read-only tag", dev("      - {name: x, area: input, address: 0}\n") + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: scale, inputs: {in: x}, outputs: {out: x}}]}\n",
			[]problem{{"9:92", "writes tag x, which is read-only"}}},
		{"two writers of a tag", header + "tags: [{name: y}]\ntasks:\n  - {name: t, period: 1ms, blocks: [{name: a, type: scale, inputs: {in: 1}, outputs: {out: y}}, {name: b, type: scale, inputs: {in: 2}, outputs: {out: y}}]}\n",
			[]problem{{"4:152", "which a.out already writes"}}},
		{"safe state unknown tag", header + "watchdog:\n  safe_state: {valve: 0}\n", []problem{{"3:16", `safe_state: unknown tag "valve"`}}},
		{"safe state of an input", dev("      - {name: x, area: discrete, address: 0}\n") + "watchdog:\n  safe_state: {x: false}\n", []problem{{"9:16", "tag x is read-only"}}},
		{"safe state value", dev("      - {name: x, area: holding, address: 0, max: 10}\n") + "watchdog:\n  safe_state: {x: 11}\n", []problem{{"9:19", "safe_state of x: 11 is above max 10"}}},
		{"modbus map unknown tag", header + "bridge:\n  modbus:\n    listen: 127.0.0.1:5020\n    map: [{tag: q, area: input, address: 0}]\n", []problem{{"5:17", `unknown tag "q"`}}},
		{"modbus map overlap", header + "tags: [{name: a}, {name: b}]\nbridge:\n  modbus:\n    listen: 127.0.0.1:5020\n    map:\n      - {tag: a, area: input, address: 0}\n      - {tag: b, area: input, address: 3}\n",
			[]problem{{"8:40", "map entry b (input 3-6) overlaps map entry a (input 0-3) in the Modbus server map; move it to address 4"}}},
		{"modbus map coil needs bool", header + "tags: [{name: a, writable: true}]\nbridge:\n  modbus:\n    map: [{tag: a, area: coil, address: 0}]\n", []problem{{"5:26", "holds one bit but the value is float64"}}},
		{"modbus write_allow not a network", header + "bridge:\n  modbus:\n    listen: 127.0.0.1:5020\n    write_allow: [10.0.0.0/8, 10.0.0.300]\n", []problem{{"5:18", `"10.0.0.300" is not a network in CIDR form`}}},
		{"modbus write_roles without MBAPS", header + "bridge:\n  modbus:\n    listen: 127.0.0.1:5020\n    write_roles: [operator]\n", []problem{{"5:18", "write_roles needs MBAPS"}}},
		{"modbus max_clients_per_address negative", header + "bridge:\n  modbus: {listen: 127.0.0.1:5020, max_clients_per_address: -1}\n", []problem{{"3:61", "max_clients_per_address -1 is negative"}}},
		{"modbus map holding of a read-only tag", header + "tags: [{name: a}]\nbridge:\n  modbus:\n    map: [{tag: a, area: holding, address: 0}]\n", []problem{{"5:26", "not writable by SCADA"}}},
		{"nic needs interface or pci", header + "partition:\n  nics: [{address: 10.0.0.2/24}]\n", []problem{{"3:10", "name the NIC by interface"}}},
		{"nic both", header + "partition:\n  nics: [{interface: eth1, pci: \"0000:03:00.0\"}]\n", []problem{{"3:33", "not both"}}},
		{"nic bad pci", header + "partition:\n  nics: [{pci: 03:00.0}]\n", []problem{{"3:16", "not a PCI address"}}},
		{"nic address not CIDR", header + "partition:\n  nics: [{interface: eth1, address: 10.0.0.2}]\n", []problem{{"3:37", "not in CIDR form"}}},
		{"nic tap in a bridge", header + "partition:\n  nics: [{interface: tap0, address: 10.0.0.2/24, bridge: br-field, standby_address: 10.0.0.3/24}]\n", nil},
		{"nic bridge and host_address", header + "partition:\n  nics: [{interface: tap0, host_address: 10.0.0.1/30, bridge: br0}]\n", []problem{{"3:63", "not both"}}},
		{"nic bridge on pci", header + "partition:\n  nics: [{pci: \"0000:03:00.0\", bridge: br0}]\n", []problem{{"3:40", "not for a pci passthrough NIC"}}},
		{"nic bridge name too long", header + "partition:\n  nics: [{interface: tap0, bridge: a-very-long-bridge}]\n", []problem{{"3:36", "not an interface name"}}},
		{"nic standby_address without bridge", header + "partition:\n  nics: [{interface: tap0, address: 10.0.0.2/24, standby_address: 10.0.0.3/24}]\n", []problem{{"3:67", "it needs bridge"}}},
		{"nic standby_address is address", header + "partition:\n  nics: [{interface: tap0, address: 10.0.0.2/24, bridge: br0, standby_address: 10.0.0.2/24}]\n", []problem{{"3:80", "is address itself"}}},
		{"nic standby_address in another subnet", header + "partition:\n  nics:\n    - interface: tap0\n      address: 10.0.0.2/24\n      bridge: br0\n      standby_address: 10.0.1.3/24\n", []problem{{"7:24", "not in address's subnet 10.0.0.0/24"}}},
		{"nic standby_address not CIDR", header + "partition:\n  nics: [{interface: tap0, address: 10.0.0.2/24, bridge: br0, standby_address: 10.0.0.3}]\n", []problem{{"3:80", "not in CIDR form"}}},
		{"device on an undeclared interface", header + "devices:\n  - {name: d, driver: modbus-tcp, address: \"h:1\", interface: eth9}\n", []problem{{"3:62", `interface "eth9" is not one of the partition's nics`}}},
		{"device address not host:port", header + "devices:\n  - {name: d, driver: modbus-tcp, address: plc}\n", []problem{{"3:44", `address "plc" is not host:port`}}},
		{"broker scheme", header + "bridge:\n  mqtt: {broker: \"http://h:1\"}\n", []problem{{"3:18", `scheme "http" is not one of`}}},
		{"broker url", header + "bridge:\n  mqtt: {broker: ssl://broker:8883}\n", nil},
		{"tls file missing", header + "bridge:\n  mqtt: {broker: \"ssl://h:8883\", tls: {ca: nope.pem}}\n", []problem{{"3:44", "testdata/nope.pem: no such file or directory"}}},
		{"sparkplug ids", header + "bridge:\n  sparkplug: {group: a/b, node: n+1}\n", []problem{{"3:22", "sparkplug.group"}, {"3:33", "sparkplug.node"}}},
		{"bridge modbus listen", header + "bridge:\n  modbus: {listen: 5020}\n", []problem{{"3:20", `modbus.listen "5020" is not host:port`}}},
		{"two services on one port", header + "bridge:\n  modbus: {listen: \"127.0.0.1:9000\"}\n  metrics: {listen: \"127.0.0.1:9000\"}\n", []problem{{"4:21", "is also the modbus.listen"}}},
		{"qos", header + "bridge:\n  mqtt: {qos: 2}\n", []problem{{"3:15", "mqtt.qos 2 is not 0 or 1"}}},
		{"latency digits", header + "latency: {digits: 6}\n", []problem{{"2:19", "latency.digits 6 is outside 1-5"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, c.src, loadErrors(t, "testdata/x.yaml", c.src), c.want)
		})
	}
}

func TestTLSFilesRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := header + "bridge:\n  mqtt: {broker: \"ssl://h:8883\", tls: {ca: ca.pem}}\n"
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := configs.Load(path); err != nil {
		t.Fatalf("ca.pem beside the config: %v", err)
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	src := `metadata:
  name: plant
  nmae: typo
partition:
  backend: vmm
devices:
  - name: d
    driver: modbus-tcp
    address: 127.0.0.1:5020
    unit_id: lots
    tags:
      - {name: a, area: holding, address: 0, type: float32}
      - {name: b, area: holding, address: 1}
tasks:
  - name: t
    period: 10
    priority: 100
    blocks:
      - {name: p, type: pid, inputs: {pv: a, sp: nope}, outputs: {out: b}}
watchdog:
  safe_state: {zz: 0}
`
	expect(t, src, loadErrors(t, "all.yaml", src), []problem{
		{"3:3", `unknown key "nmae" (did you mean "name"?)`},
		{"5:12", `unknown backend "vmm"`},
		{"10:14", "unit_id: expected a whole number"},
		{"13:43", "overlaps tag a"},
		{"16:13", `duration "10" has no unit`},
		{"17:15", "priority 100 is outside 1-99"},
		{"19:50", `reads unknown tag "nope"`},
		{"21:16", `unknown tag "zz"`},
	})
}

func TestErrorsPrintFileLineCol(t *testing.T) {
	_, err := configs.LoadBytes("plant.yaml", []byte(header+"tasks:\n  - {name: t, period: 10}\n"))
	want := `plant.yaml:3:23: period: duration "10" has no unit (write e.g. 10ms, 10us or 10s)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestUnitsMatch(t *testing.T) {
	for _, c := range []struct {
		a, b string
		ok   bool
	}{
		{"", "m", true}, {"m", "", true}, {"M", "m", true}, {"°C", "degC", true}, {"celsius", "°c", true},
		{"%", "percent", true}, {"m3/h", "m³/h", true}, {"m", "%", false}, {"degC", "degF", false}, {"bar", "kPa", false},
	} {
		if got := configs.UnitsMatch(c.a, c.b); got != c.ok {
			t.Errorf("UnitsMatch(%q, %q) = %v, want %v", c.a, c.b, got, c.ok)
		}
	}
}
