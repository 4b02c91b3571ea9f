package multikernel_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
)

// A second kernel outlives the supervisor that spawned it: a later one
// adopts the running instance from its record, and its Stop halts and
// removes it; once the instance is gone, adoption fails with ErrGone and
// Reclaim removes what is left.
func TestAdoptRunningInstance(t *testing.T) {
	r := newRig(t, true)
	first := r.partition(t)
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	rec, err := first.Record()
	if err != nil {
		t.Fatal(err)
	}
	later := r.partition(t)
	if err := later.Adopt(rec); err != nil {
		t.Fatal(err)
	}
	if in := later.Info(); in.CPUs == "" || in.CPUSet != "multikernel instance" {
		t.Fatalf("adopted info %+v", in)
	}
	if err := later.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	halted := false
	for _, c := range r.k.Calls() {
		if c.Syscall == "reboot" && c.Cmd == kexec.CmdHalt {
			halted = true
		}
	}
	if !halted || strings.Contains(r.k.State(), "instance tank") {
		t.Fatalf("the adopting supervisor's stop left the instance: halted %v, %s", halted, r.k.State())
	}
}

// An instance that failed while no supervisor watched it is not adopted
// (ErrGone); Reclaim unloads its image and removes it.
func TestReclaimFailedInstance(t *testing.T) {
	r := newRig(t, true)
	first := r.partition(t)
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	rec, err := first.Record()
	if err != nil {
		t.Fatal(err)
	}
	r.k.Exit("tank", "failed")
	later := r.partition(t)
	if err := later.Adopt(rec); !errors.Is(err, supervisor.ErrGone) {
		t.Fatalf("adopt of a failed instance = %v, want ErrGone", err)
	}
	if err := later.Reclaim(ctx(t), rec); err != nil {
		t.Fatalf("reclaim: %v", err)
	}
	if strings.Contains(r.k.State(), "tank(") {
		t.Fatalf("instance left after reclaim: %s", r.k.State())
	}
}
