package configs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The embedded broker's users, topics and limits are checked at load,
// each problem where it was written.
func TestValidateMQTTUsers(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	os.WriteFile(filepath.Join(dir, "ok.hash"), append(hash, '\n'), 0o600)
	os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("pw\n"), 0o600)
	name := filepath.Join(dir, "c.yaml")
	good := header + `bridge:
  sparkplug: {primary_host: scada}
  mqtt:
    users:
      - {username: op, password_file: ok.hash}
      - {username: host, password: x, primary_host: true}
      - {username: view, password: y, read_only: true, topics: {subscribe: ["mkrt/#"]}}
    limits: {max_packet: 64Ki, max_clients: 32, connect_timeout: 3s, max_inflight: 16, message_rate: 50}
`
	if errs := loadErrors(t, name, good); len(errs) != 0 {
		t.Fatalf("a good users section refused:\n%v", errs)
	}
	bad := header + `bridge:
  mqtt:
    users:
      - {username: a, password: x, password_file: ok.hash}
      - {username: b}
      - {username: c, password_file: plain.txt}
      - {username: d, password: x, primary_host: true}
      - {username: e, password: x, read_only: true, topics: {publish: ["mkrt/#"]}}
      - {username: f, password: x, topics: {subscribe: ["a/#/b", "x+"]}}
      - {username: mkrt-bridge, password: x}
    limits: {max_packet: 512Mi, max_clients: -1, connect_timeout: 2m}
`
	expect(t, bad, loadErrors(t, name, bad), []problem{
		{"5:51", "password and password_file"},
		{"6:20", "has no password"},
		{"7:38", "does not hold a bcrypt hash"},
		{"8:50", "sparkplug.primary_host is not set"},
		{"9:71", "read_only but has topics.publish"},
		{"10:44", `"a/#/b" is not an MQTT topic filter`},
		{"10:44", `"x+" is not an MQTT topic filter`},
		{"11:20", "the bridge's own credential"},
		{"12:26", "max_packet"},
		{"12:46", "max_clients -1"},
		{"12:67", "connect_timeout 2m0s"},
	})
	noHost := header + `bridge:
  sparkplug: {primary_host: scada}
  mqtt:
    users: [{username: ignition, password: x}]
`
	expect(t, noHost, loadErrors(t, name, noHost), []problem{{"3:29", "no user of the embedded broker may publish its STATE"}})
}
