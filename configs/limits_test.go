package configs_test

import (
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// TestNameLimits: every name is bounded by where it is used, and the
// error says so at the name's position (a 5 MB metadata.name used to
// validate ok and then went into socket paths and the region header).
func TestNameLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name string
		src  string
		want []problem
	}{
		{"5 MB metadata.name", "metadata: {name: " + long(5<<20) + "}\n",
			[]problem{{"1:18", "metadata.name \"" + long(40) + "\"… (5242880 bytes) is 5242880 bytes; at most 32: it is stored in the shared region's header and names the control socket /run/mkrt/<name>.sock"}}},
		{"33-byte metadata.name", "metadata: {name: " + long(33) + "}\n", []problem{{"1:18", "is 33 bytes; at most 32"}}},
		{"32-byte metadata.name", "metadata: {name: " + long(32) + "}\n", nil},
		{"16-byte nic interface", header + "partition:\n  nics: [{interface: " + long(16) + "}]\n",
			[]problem{{"3:22", "nic: interface \"" + long(16) + "\" is 16 bytes; at most 15: it is not an interface name, which Linux keeps to 15 bytes (IFNAMSIZ"}}},
		{"15-byte nic interface", header + "partition:\n  nics: [{interface: " + long(15) + "}]\n", nil},
		{"task name", header + "tasks:\n  - {name: " + long(49) + ", period: 10ms}\n", []problem{{"3:12", "task name \"" + long(40) + "\"… (49 bytes) is 49 bytes; at most 48: it is stored in the shared region's task table"}}},
		{"tag name", header + "tags:\n  - {name: " + long(65) + "}\n", []problem{{"3:12", "tag name \"" + long(40) + "\"… (65 bytes) is 65 bytes; at most 64: it is stored in the shared region's tag directory"}}},
		{"device name", header + "devices:\n  - {name: " + long(65) + ", driver: modbus-tcp, address: \"h:1\"}\n", []problem{{"3:12", "device name"}}},
		{"block name", header + "tasks:\n  - {name: t, period: 1ms, blocks: [{name: " + long(65) + ", type: not, inputs: {in: true}}]}\n", []problem{{"3:44", "block name"}}},
		{"unit", header + "tags:\n  - {name: x, unit: " + long(17) + "}\n", []problem{{"3:21", "tags[0]: unit \"" + long(17) + "\" is 17 bytes; at most 16"}}},
		{"any other string", header + "tags:\n  - {name: x, description: " + long(configs.MaxString+1) + "}\n", []problem{{"3:28", "at most 4096"}}},
		{"shared_memory too large", header + "partition: {shared_memory: 2Gi}\n", []problem{{"2:28", "partition.shared_memory 2Gi is above the most mkrt maps, 1Gi"}}},
		{"shared_memory in bounds", header + "partition: {shared_memory: 16Mi}\n", nil},
		{"block input and output", header + "tags: [{name: y}]\ntasks:\n  - {name: t, period: 1ms, blocks: [{name: b, type: not, inputs: {in: " + long(5<<20) + "}, outputs: {out: " + long(65) + "}}]}\n",
			[]problem{{"4:71", "block b: input in \"" + long(40) + "\"… (5242880 bytes) is 5242880 bytes; at most 4096"}, {"4:5242969", "block b: output out \"" + long(40) + "\"… (65 bytes) is 65 bytes; at most 64"}}},
		{"list element", header + "partition: {kernel: {modules: [" + long(configs.MaxString+1) + "]}}\n", []problem{{"2:31", "modules[0] \"" + long(40) + "\"… (4097 bytes) is 4097 bytes; at most 4096"}}},
		{"5 MB invalid name", "metadata: {name: \"" + strings.Repeat("é", 2<<20) + "\"}\n", []problem{{"1:18", "is 4194304 bytes; at most 32"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := loadErrors(t, "testdata/x.yaml", c.src)
			for _, e := range errs {
				if len(e.Msg) > 1000 {
					t.Errorf("a message of %d bytes: a long name is quoted whole", len(e.Msg))
				}
			}
			expect(t, c.src, errs, c.want)
		})
	}
}
