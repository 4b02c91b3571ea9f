package configs_test

import "testing"

func TestValidateStandbyCPUs(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []problem
	}{
		{"ok", header + "partition: {board: qemu-x86_64, cpus: \"1\", standby_cpus: \"0\"}\n", nil},
		{"overlap", header + "partition: {board: qemu-x86_64, cpus: \"1\", standby_cpus: \"1\"}\n", []problem{{"2:58", "CPU 1 is also in partition.cpus"}}},
		{"count", header + "partition: {board: qemu-x86_64, cpus: \"1\", standby_cpus: \"0,0\"}\n", []problem{{"2:58", "listed twice"}, {"2:58", "give as many standby CPUs"}}},
		{"outside", header + "partition: {board: qemu-x86_64, cpus: \"1\", standby_cpus: \"5\"}\n", []problem{{"2:58", "CPU 5 is outside board qemu-x86_64"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, tc.src, loadErrors(t, "c.yaml", tc.src), tc.want)
		})
	}
}
