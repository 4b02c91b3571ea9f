package bridge_test

import (
	"path/filepath"
	"testing"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
)

// TestExamplesBuild: every example plant's bridge section (register map,
// Sparkplug ids, JSON prefix) is accepted against its own tag table.
func TestExamplesBuild(t *testing.T) {
	files, _ := filepath.Glob("../configs/examples/*.yaml")
	if len(files) == 0 {
		t.Skip("no example configs in ../configs/examples")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := configs.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := bridgetest.NewPlantFromConfig(cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bridge.New(cfg, p, bridge.Options{StateDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
