package configs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// Inside the application kernel the general side's files (certificates,
// password files) are not in the image: the guest's load does not look
// for them, the host's does.
func TestLoadInPartitionSkipsGeneralSideFiles(t *testing.T) {
	text, err := os.ReadFile("examples/tank-level.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(text), "  mqtt:\n", "  mqtt:\n    tls: {ca: /nonexistent/ca.pem}\n", 1)
	if cfg == string(text) {
		t.Fatal("the example has no bridge.mqtt section to add TLS to")
	}
	path := filepath.Join(t.TempDir(), "tank.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := configs.Load(path); err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Fatalf("Load on the host: %v, want the missing CA named", err)
	}
	if _, err := configs.LoadInPartition(path); err != nil {
		t.Fatalf("LoadInPartition: %v", err)
	}
}
