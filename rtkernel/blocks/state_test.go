package blocks_test

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// mixed is a program with every stateful block type.
func mixed() *configs.Config {
	return config([]string{"x", "sp", "b:bool", "u", "f", "rp", "h:bool", "al:bool", "q1:bool", "q2:bool", "q3:bool", "cv", "d", "c:bool"},
		blk(10, "pid", "pid", "in:pv=f", "in:sp=sp", "out:out=u", "p:kp=2", "p:ti=3s", "p:td=1s", "p:rate_max=50"),
		blk(20, "lag", "lag", "in:in=x", "out:out=f", "p:tau=2s"),
		blk(30, "ramp", "ramp", "in:in=x", "out:out=rp", "p:rate=1"),
		blk(40, "hys", "hysteresis", "in:in=x", "out:out=h", "p:on=6", "p:off=4"),
		blk(50, "alm", "alarm", "in:in=x", "out:active=al", "p:hi=7", "p:delay=500ms", "p:deadband=1"),
		blk(60, "ton", "ton", "in:in=b", "out:q=q1", "p:pt=700ms"),
		blk(70, "tof", "tof", "in:in=b", "out:q=q2", "p:pt=700ms"),
		blk(80, "tp", "tp", "in:in=b", "out:q=q3", "p:pt=700ms"),
		blk(90, "cnt", "counter", "in:up=b", "out:cv=cv"),
		blk(100, "dly", "delay", "in:in=pid.out", "out:out=d"),
		blk(110, "cmp", "compare", "in:a=x", "in:b=5", "out:out=c", "p:op=gt", "p:hysteresis=1"),
	)
}

// drive sets the inputs of the mixed program for cycle k.
func (r *rig) drive(k int) {
	r.set("x", 5+5*math.Sin(float64(k)/7))
	r.set("sp", 3+float64(k/40))
	r.setBool("b", k%9 < 4)
}

func snapshot(r *rig) string {
	return fmt.Sprint(r.tab.Samples)
}

// State saved mid-run and loaded into a freshly compiled program continues
// exactly as the original.
func TestSaveLoadStateContinuesIdentically(t *testing.T) {
	a := newRig(t, mixed(), 100*time.Millisecond)
	for k := range 57 {
		a.drive(k)
		a.step()
	}
	saved := a.tp.SaveState(nil)
	if len(saved) != a.tp.StateLen() {
		t.Fatalf("SaveState gave %d values, StateLen %d", len(saved), a.tp.StateLen())
	}
	b := newRig(t, mixed(), 100*time.Millisecond)
	b.now = a.now
	if err := b.tp.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	for k := 57; k < 200; k++ {
		a.drive(k)
		b.drive(k)
		a.step()
		b.step()
		if sa, sb := snapshot(a), snapshot(b); sa != sb {
			t.Fatalf("cycle %d after load:\n%s\n%s", k, sa, sb)
		}
	}
}

func TestLoadStateRejectsOtherPrograms(t *testing.T) {
	a := newRig(t, mixed(), time.Millisecond)
	other := newRig(t, config([]string{"x", "y"}, blk(10, "lag", "lag", "in:in=x", "out:out=y", "p:tau=1s")), time.Millisecond)
	if err := a.tp.LoadState(other.tp.SaveState(nil)); !errors.Is(err, blocks.ErrState) {
		t.Fatalf("loading another program's state: %v, want ErrState", err)
	}
	st := a.tp.SaveState(nil)
	st[0]++ // the fingerprint
	if err := a.tp.LoadState(st); !errors.Is(err, blocks.ErrState) {
		t.Fatalf("loading state with a wrong fingerprint: %v, want ErrState", err)
	}
}

func TestSetParam(t *testing.T) {
	r := newRig(t, mixed(), 100*time.Millisecond)
	for k := range 30 {
		r.drive(k)
		r.step()
	}
	for _, tc := range []struct {
		block, param string
		v            float64
		want         error
	}{
		{"nosuch", "kp", 1, blocks.ErrUnknownBlock},
		{"pid", "kd", 1, blocks.ErrUnknownParam},
		{"pid", "ti", -1, blocks.ErrParamValue},
		{"pid", "out_min", 200, blocks.ErrParamValue}, // above out_max
		{"pid", "kp", math.NaN(), blocks.ErrParamValue},
		{"pid", "direct", 0.5, blocks.ErrParamValue},
		{"hys", "off", 7, blocks.ErrParamValue},
		{"cmp", "op", 6, blocks.ErrParamValue},
		{"alm", "hi", math.NaN(), blocks.ErrParamValue}, // the alarm's only limit
		{"ramp", "rate", 0, blocks.ErrParamValue},
		{"pid", "out_max", 80, nil},
		{"lag", "tau", 0.5, nil},
		{"cmp", "op", 2, nil},
	} {
		err := r.tp.SetParam(tc.block, tc.param, tc.v)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("SetParam(%s, %s, %v) = %v, want %v", tc.block, tc.param, tc.v, err, tc.want)
		}
	}
	named := blocks.Dotted{TaskProgram: r.tp}
	if err := named.SetParam("lag.tau", 0.25); err != nil {
		t.Fatalf("Dotted.SetParam: %v", err)
	}
	if err := named.SetParam("lag", 1); !errors.Is(err, blocks.ErrUnknownParam) {
		t.Fatalf("Dotted.SetParam without a dot: %v, want ErrUnknownParam", err)
	}
	if v, _ := r.tp.Param("lag", "tau"); v != 0.25 {
		t.Fatalf("tau = %v after Dotted.SetParam, want 0.25", v)
	}
	if v, err := r.tp.Param("pid", "out_min"); err != nil || v != 0 {
		t.Fatalf("a refused change took effect: out_min = %v, %v", v, err)
	}
	if v, _ := r.tp.Param("pid", "out_max"); v != 80 {
		t.Fatalf("out_max = %v after SetParam, want 80", v)
	}
}

// Changing kp online moves the output no more than the next cycle would
// have anyway.
func TestSetParamKpIsBumpless(t *testing.T) {
	run := func(change bool) float64 {
		r := newRig(t, pidConfig("kp=2", "ti=10s", "out_min=-1000", "out_max=1000"), 10*time.Millisecond)
		r.set("sp", 10)
		r.set("pv", 4)
		r.steps(50)
		if change {
			if err := r.tp.SetParam("fic", "kp", 6); err != nil {
				t.Fatal(err)
			}
		}
		r.step()
		return r.get("u")
	}
	same, changed := run(false), run(true)
	// The only difference is the new gain on one cycle's integral.
	if d := math.Abs(changed - same); d > (6-2)*0.01/10*6+1e-9 {
		t.Fatalf("kp change stepped the output by %v (%v -> %v)", d, same, changed)
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	r := newRig(t, mixed(), 10*time.Millisecond)
	k := 0
	if n := testing.AllocsPerRun(1000, func() {
		r.drive(k)
		k++
		r.step()
	}); n != 0 {
		t.Fatalf("Run allocates %v times per cycle", n)
	}
	buf := make([]float64, 0, r.tp.StateLen())
	if n := testing.AllocsPerRun(100, func() {
		st := r.tp.SaveState(buf[:0])
		if err := r.tp.LoadState(st); err != nil {
			t.Fatal(err)
		}
		if err := r.tp.SetParam("pid", "kp", 2.5); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("SaveState, LoadState and SetParam allocate %v times", n)
	}
}
