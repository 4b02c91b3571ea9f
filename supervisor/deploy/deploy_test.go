package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

func loadExample(t *testing.T, replace ...string) *configs.Config {
	t.Helper()
	b, err := os.ReadFile("../../configs/examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := withoutStandby(string(b))
	for i := 0; i+1 < len(replace); i += 2 {
		if strings.Count(text, replace[i]) != 1 {
			t.Fatalf("%q is not once in the example", replace[i])
		}
		text = strings.Replace(text, replace[i], replace[i+1], 1)
	}
	cfg, err := configs.LoadBytes("tank-level.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestParamChanges(t *testing.T) {
	old := loadExample(t)
	for _, tc := range []struct {
		name    string
		replace []string
		want    []ParamChange
		err     string
	}{
		{name: "same config"},
		{name: "gain", replace: []string{"kp: 100", "kp: 120"},
			want: []ParamChange{{Block: "level_pid", Param: "kp", Old: "100", New: "120", Value: 120}}},
		{name: "duration and alarm limit", replace: []string{"ti: 40s", "ti: 1m", "hi: 2.6", "hi: 2.55"},
			want: []ParamChange{{Block: "level_alarms", Param: "hi", Old: "2.6", New: "2.55", Value: 2.55}, {Block: "level_pid", Param: "ti", Old: "40s", New: "1m", Value: 60}}},
		{name: "period", replace: []string{"period: 20ms", "period: 10ms"}, err: "structural"},
		{name: "wiring", replace: []string{"in: high_switch", "in: low_switch"}, err: "structural"},
		{name: "bridge", replace: []string{"node: tank-1", "node: tank-2"}, err: "structural"},
		{name: "parameter added", replace: []string{"td: 0s", "td: 0s\n          bias: 10"},
			want: []ParamChange{{Block: "level_pid", Param: "bias", Old: "", New: "10", Value: 10}}},
		{name: "parameter removed", replace: []string{"          td: 0s\n", ""}, err: "removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParamChanges(old, loadExample(t, tc.replace...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParamChanges = %v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ParamChanges = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("change %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParamValue(t *testing.T) {
	for raw, want := range map[string]float64{"1.5": 1.5, "250ms": 0.25, "2m": 120, "lt": 2, "ne": 5} {
		name := "k"
		if raw == "lt" || raw == "ne" {
			name = "op"
		}
		if got, err := paramValue(name, configs.Value{Raw: raw}); err != nil || got != want {
			t.Errorf("paramValue(%s, %q) = %v, %v; want %v", name, raw, got, err, want)
		}
	}
	for _, c := range [][2]string{{"op", "gte"}, {"k", "fast"}} {
		if _, err := paramValue(c[0], configs.Value{Raw: c[1]}); err == nil {
			t.Errorf("paramValue(%s, %q) accepted", c[0], c[1])
		}
	}
}

// withoutStandby removes the example's partition.standby_cpus (and its
// comment), so each test states the standby cores it means.
func withoutStandby(text string) string {
	var keep []string
	for _, l := range strings.SplitAfter(text, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "standby_cpus:") || strings.HasPrefix(t, "# mkrt apply hands a structural change") || strings.HasPrefix(t, "# control program, which starts on these cores") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}
