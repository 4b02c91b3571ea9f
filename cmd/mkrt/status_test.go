package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// runMkrt runs the CLI with args and returns its output.
func runMkrt(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestControlSubcommands(t *testing.T) {
	ctrl := &supervisortest.Controller{
		St:    supervisor.Status{Partition: "tank", Backend: "process", State: supervisor.Running, PID: 7, Uptime: time.Minute},
		TagsV: []control.TagValue{{Name: "level", Value: 1.5, Unit: "m", Quality: "good"}, {Name: "sp", Value: 2, Quality: "good", Writable: true}},
	}
	sock := filepath.Join(t.TempDir(), "tank.sock")
	srv, err := control.Listen(sock, ctrl, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("tags: []\n"), 0o644)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("invalid: 1\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
		err  error
	}{
		{[]string{"status"}, "tank (process backend)", nil},
		{[]string{"status", "--json"}, `"state": "running"`, nil},
		{[]string{"tags"}, "level", nil},
		{[]string{"tags", "--json"}, `"name": "sp"`, nil},
		{[]string{"set", "sp", "3"}, "sp = 3 (applied)", nil},
		{[]string{"set", "level", "3"}, "", control.ErrForbidden},
		{[]string{"set", "nope", "3"}, "", control.ErrNotFound},
		{[]string{"apply", cfg}, "applied", nil},
		{[]string{"apply", bad}, "", control.ErrInvalid},
	} {
		out, err := runMkrt(t, append(tc.args, "--socket", sock)...)
		if (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(out, tc.want) {
			t.Errorf("mkrt %s: err %v, output:\n%s", strings.Join(tc.args, " "), err, out)
		}
	}
	missing := filepath.Join(t.TempDir(), "none.sock")
	if _, err := runMkrt(t, "status", "--socket", missing); !errors.Is(err, control.ErrNoPartition) ||
		!strings.Contains(err.Error(), "no running partition at "+missing+" (start one with mkrt run CONFIG)") {
		t.Errorf("missing socket: %v", err)
	}
}
