package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor/deploy"
)

// TestReadyPrintsNoPassword: mkrt run (and so make run) printed the MQTT
// password in its ready-to-paste mosquitto_sub line. It now names where the
// password is, or has the shell read a plaintext password file.
func TestReadyPrintsNoPassword(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "bridge.pw")
	if err := os.WriteFile(pw, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, mqtt, want string
	}{
		{"read-only user", "{username: bridge, password: bridge-secret, users: [{username: viewer, password: viewer-secret, read_only: true}]}",
			`-u viewer -P "$MQTT_PASSWORD"`},
		{"bridge password", "{username: bridge, password: bridge-secret}", `-u bridge -P "$MQTT_PASSWORD"`},
		{"bridge password file", "{username: bridge, password_file: bridge.pw}", `-u bridge -P "$(cat '` + pw + `')"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte("metadata: {name: p}\nbridge: {mqtt: "+c.mqtt+"}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := configs.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			printReady(&out, deploy.Ready{Config: cfg, Socket: "/run/mkrt/p.sock"})
			if strings.Contains(out.String(), "secret") {
				t.Errorf("a password is printed:\n%s", out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Errorf("want %s in:\n%s", c.want, out.String())
			}
		})
	}
}
