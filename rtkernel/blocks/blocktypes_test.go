package blocks_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// loadPumps loads the pump-station example with old replaced by new.
func loadPumps(t *testing.T, old, new string) (*configs.Config, error) {
	t.Helper()
	b, err := os.ReadFile("../../configs/examples/pump-station.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if old != "" && strings.Count(text, old) != 1 {
		t.Fatalf("%q is not once in the example", old)
	}
	return configs.LoadBytes("pump-station.yaml", []byte(strings.Replace(text, old, new, 1)), blocks.Validate)
}

// An instance's parameter is a parameter of the blocks it expands to, so
// changing it applies live; a parameter given in an expression is not.
func TestBlockTypeParamChanges(t *testing.T) {
	old, err := loadPumps(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		old, new string
		want     []blocks.ParamChange
		err      error
	}{
		{name: "instance parameter set", old: "outputs: {cmd: p1_run,", new: "params: {start_timeout: 8s}\n        outputs: {cmd: p1_run,",
			want: []blocks.ParamChange{{Block: "pump_1_start_failed", Param: "pt", Old: "5s", New: "8s", Value: 8}}},
		{name: "type default", old: "default: 5s", new: "default: 6s", err: blocks.ErrStructural},
		{name: "wiring", old: "running: p1_running", new: "running: p2_running", err: blocks.ErrStructural},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := loadPumps(t, tc.old, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			got, err := blocks.ParamChanges(old, nc)
			if tc.err != nil {
				if err == nil || !strings.Contains(err.Error(), tc.err.Error()) {
					t.Fatalf("got %v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestBlockTypeNamedLikeCatalogue(t *testing.T) {
	_, err := loadPumps(t, "  - name: pump_with_runtime\n", "  - name: pid\n")
	if err == nil || !strings.Contains(err.Error(), `pump-station.yaml:50:11: block type "pid" has the name of a block of the catalogue`) {
		t.Fatalf("got %v, want the clash reported at the type's name", err)
	}
}
