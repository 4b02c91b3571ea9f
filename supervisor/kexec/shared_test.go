package kexec_test

import (
	"slices"
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

func TestReservations(t *testing.T) {
	got := kexec.Reservations("BOOT_IMAGE=/vmlinuz ro memmap=4M$0x9fc00000 quiet memmap=0x400000$0xa0000000,64K@0x1000 parker_cma=1G memmap=2G#0x100000000")
	want := []kexec.Range{{Base: 0x9fc00000, Bytes: 4 << 20}, {Base: 0xa0000000, Bytes: 0x400000}}
	if !slices.Equal(got, want) {
		t.Fatalf("Reservations = %+v, want %+v", got, want)
	}
}
