package configs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// TestPathsResolvedAtLoad: file paths are checked relative to the config
// file and were opened relative to the working directory. Load now makes
// every one absolute, so what is checked is what is opened, from any
// working directory.
func TestPathsResolvedAtLoad(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem", "mqtt.pw", "viewer.hash", "bzImage"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := header + `partition: {kernel: {image: bzImage}}
bridge:
  mqtt:
    broker: ssl://h:8883
    password_file: mqtt.pw
    tls: {ca: ca.pem, cert: cert.pem, key: key.pem}
    store: {dir: buffer}
  modbus:
    listen: 127.0.0.1:5020
    tls: {ca: ca.pem, cert: cert.pem, key: key.pem, client_auth: true}
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// Load by a relative path from the config's parent, then open from
	// somewhere else: the supervisor's working directory is not the
	// config's.
	t.Chdir(filepath.Dir(dir))
	c, err := configs.Load(filepath.Join(filepath.Base(dir), "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	m, ms := &c.Bridge.MQTT, &c.Bridge.Modbus
	for what, p := range map[string]string{
		"mqtt.password_file": m.PasswordFile, "mqtt.tls.ca": m.TLS.CA, "mqtt.tls.cert": m.TLS.Cert, "mqtt.tls.key": m.TLS.Key,
		"modbus.tls.ca": ms.TLS.CA, "modbus.tls.key": ms.TLS.Key, "kernel.image": c.Partition.Kernel.Image,
	} {
		if !filepath.IsAbs(p) {
			t.Errorf("%s is %q, not an absolute path", what, p)
			continue
		}
		if _, err := os.ReadFile(p); err != nil {
			t.Errorf("%s is checked but cannot be opened from another directory: %v", what, err)
		}
	}
	if want := filepath.Join(dir, "buffer"); m.Store.Dir != want {
		t.Errorf("mqtt.store.dir is %q, want %q", m.Store.Dir, want)
	}
	// The hash of the config written out and read back elsewhere is the
	// same: what the executive loads names the same files.
	text, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := configs.LoadBytes(filepath.Join(t.TempDir(), "generation-2.yaml"), text)
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash() != c.Hash() {
		t.Error("the written-out config hashes differently where it is read back")
	}
}
