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
