package kexec_test

import (
	"testing"

	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/kexec/kexectest"
)

func calls(r *kexectest.Recorder) []string {
	var out []string
	for _, c := range r.Calls() {
		out = append(out, c.Syscall)
	}
	return out
}

// Two users of one mount: one mount call, and the unmount only when the
// second user is done. A mount made by someone else is left alone.
func TestSharedMount(t *testing.T) {
	r := &kexectest.Recorder{}
	no := func() (bool, error) { return false, nil }
	for i := range 2 {
		if ours, err := kexec.SharedMount(r, "parker", "/sys/fs/parker", no); !ours || err != nil {
			t.Fatalf("user %d: ours %v, %v", i, ours, err)
		}
	}
	if err := kexec.SharedUnmount(r, "/sys/fs/parker"); err != nil {
		t.Fatal(err)
	}
	if got := calls(r); len(got) != 1 || got[0] != "mount" {
		t.Fatalf("after the first user left: %v", got)
	}
	if err := kexec.SharedUnmount(r, "/sys/fs/parker"); err != nil {
		t.Fatal(err)
	}
	if got := calls(r); len(got) != 2 || got[1] != "umount2" {
		t.Fatalf("after the last user left: %v", got)
	}

	other := &kexectest.Recorder{}
	if ours, err := kexec.SharedMount(other, "parker", "/sys/fs/parker", func() (bool, error) { return true, nil }); ours || err != nil {
		t.Fatalf("mounted elsewhere: ours %v, %v", ours, err)
	}
	if got := calls(other); len(got) != 0 {
		t.Fatalf("mounted elsewhere: calls %v", got)
	}
}
