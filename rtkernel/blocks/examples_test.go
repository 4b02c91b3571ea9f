package blocks_test

import (
	"path/filepath"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// Every example config compiles, and each of its tasks runs a cycle.
func TestExamplesCompile(t *testing.T) {
	files, err := filepath.Glob("../../configs/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no example configs in configs/examples yet")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := configs.Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tab, err := cfg.TagTable()
			if err != nil {
				t.Fatal(err)
			}
			p, err := blocks.Compile(cfg, tab)
			if err != nil {
				t.Fatalf("Compile:\n%v", err)
			}
			for _, task := range cfg.Tasks {
				tp := p.Task(task.Name)
				if tp == nil || tp.Len() != len(task.Blocks) {
					t.Fatalf("task %q: program %v with wrong block count", task.Name, tp)
				}
				tp.Run(task.Period.D(), task.Period.D())
			}
		})
	}
}
