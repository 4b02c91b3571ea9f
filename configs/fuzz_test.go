package configs_test

import (
	"errors"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// FuzzLoad feeds arbitrary bytes to Parse and to the loader (Load's
// decode, defaults and validation): neither may panic, and every problem
// reported must carry a file position. The seed corpus in
// testdata/fuzz/FuzzLoad holds the examples and broken variants of them.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(header))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := configs.Parse("fuzz.yaml", data); err != nil {
			positioned(t, err)
		}
		c, err := configs.LoadBytes("fuzz.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("no config and no error")
			}
			c.Hash()
			if _, err := c.Marshal(); err != nil {
				t.Fatalf("marshal of a valid config: %v", err)
			}
			return
		}
		positioned(t, err)
	})
}

// positioned fails unless err is a non-empty configs.Errors whose every
// problem has a position in the fuzzed file.
func positioned(t *testing.T, err error) {
	t.Helper()
	var errs configs.Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error is not a non-empty configs.Errors: %T %v", err, err)
	}
	for _, e := range errs {
		if e.Pos.File != "fuzz.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
			t.Fatalf("problem without a position: %q at %+v", e.Msg, e.Pos)
		}
	}
}
