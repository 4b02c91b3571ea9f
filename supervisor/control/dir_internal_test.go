package control

import (
	"os"
	"path/filepath"
	"testing"
)

// A supervisor run without root puts its socket under $XDG_RUNTIME_DIR; the
// CLI of the same user must look there (it used to look only in /run/mkrt).
func TestUserDir(t *testing.T) {
	home := func() (string, error) { return "/home/op", nil }
	env := map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}
	if d := userDir(0, func(k string) string { return env[k] }, home); d != Dir {
		t.Errorf("root: %s, want %s", d, Dir)
	}
	if d := userDir(1000, func(k string) string { return env[k] }, home); d != "/run/user/1000/mkrt" {
		t.Errorf("user with XDG_RUNTIME_DIR: %s", d)
	}
	if d := userDir(1000, func(string) string { return "" }, home); d != "/home/op/.cache/mkrt" {
		t.Errorf("user without XDG_RUNTIME_DIR: %s", d)
	}
}

func TestResolveLooksInEveryDir(t *testing.T) {
	user, root := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(user, "tank.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Resolve("", user, root); err != nil || p != filepath.Join(user, "tank.sock") {
		t.Fatalf("Resolve = %q, %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(root, "heater.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve("", user, root); err == nil {
		t.Fatal("two sockets in two directories: no choice asked for")
	}
}
