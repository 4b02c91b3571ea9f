package deploy

import (
	"os"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// TestGenerationConfigIsPrivate: generation-N.yaml carries every MQTT
// password of the config; only its owner reads it.
func TestGenerationConfigIsPrivate(t *testing.T) {
	cfg, err := configs.LoadBytes("", []byte("metadata: {name: p}\nbridge: {mqtt: {password: secret}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{o: Options{StateDir: t.TempDir()}}
	_, path, err := d.writeGenerationConfig(cfg, cfg.Partition.CPUs, 2)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
}
