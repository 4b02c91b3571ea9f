package blocks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// mixedPlus is mixed with the PID's pv filtered by a new lag, an extra
// alarm, and the ramp removed: a structural change.
func mixedPlus() *configs.Config {
	cfg := mixed()
	cfg.Tags = append(cfg.Tags, tg("fx"), tg("al2:bool"))
	var kept []configs.Block
	for _, b := range cfg.Tasks[0].Blocks {
		switch b.Name {
		case "ramp":
			continue
		case "pid":
			b.Inputs["pv"] = configs.Ref{Pos: b.Inputs["pv"].Pos, Raw: "pvlag.out"}
		}
		kept = append(kept, b)
	}
	kept = append(kept,
		blk(200, "pvlag", "lag", "in:in=f", "out:out=fx", "p:tau=0s"),
		blk(210, "alm2", "alarm", "in:in=x", "out:active=al2", "p:lo=1"))
	cfg.Tasks[0].Blocks = kept
	return cfg
}

// The state of every block present in both programs carries over by name:
// the changed program continues exactly as the original, block for block.
func TestExportImportByNameAcrossStructuralChange(t *testing.T) {
	a := newRig(t, mixed(), 100*time.Millisecond)
	for k := range 57 {
		a.drive(k)
		a.step()
	}
	buf := make([]byte, 0, a.tp.ExportLen())
	blob := a.tp.ExportState(buf)
	if len(blob) != a.tp.ExportLen() {
		t.Fatalf("ExportState wrote %d bytes, ExportLen %d", len(blob), a.tp.ExportLen())
	}
	b := newRig(t, mixedPlus(), 100*time.Millisecond)
	b.now = a.now
	st, err := b.tp.ImportState(blob)
	if err != nil {
		t.Fatal(err)
	}
	// mixed: 11 blocks; mixedPlus drops ramp and adds pvlag and alm2.
	if want := (wire.BlockCounts{Carried: 10, Fresh: 2, Dropped: 1}); st != want {
		t.Fatalf("ImportState: %+v, want %+v", st, want)
	}
	// With tau 0 the lag passes pv through, so the PID sees the same input.
	for k := 57; k < 200; k++ {
		a.drive(k)
		b.drive(k)
		a.step()
		b.step()
		for _, name := range []string{"u", "f", "h", "al", "q1", "q2", "q3", "cv", "d", "c"} {
			if va, vb := a.get(name), b.get(name); va != vb {
				t.Fatalf("cycle %d: %s = %v after the hand-over, %v without", k, name, vb, va)
			}
		}
	}
}

// A block whose type changed under the same name starts fresh.
func TestImportSkipsChangedType(t *testing.T) {
	a := newRig(t, config([]string{"x", "y"}, blk(10, "f", "lag", "in:in=x", "out:out=y", "p:tau=1s")), 10*time.Millisecond)
	a.set("x", 7)
	a.steps(5)
	b := newRig(t, config([]string{"x", "y"}, blk(10, "f", "ramp", "in:in=x", "out:out=y", "p:rate=1")), 10*time.Millisecond)
	st, err := b.tp.ImportState(a.tp.ExportState(nil))
	if err != nil {
		t.Fatal(err)
	}
	if st != (wire.BlockCounts{Fresh: 1, Dropped: 1}) {
		t.Fatalf("ImportState: %+v", st)
	}
}

// Held outputs travel too: a PID whose pv goes bad right after the switch
// holds the output it had before it.
func TestImportCarriesHeldOutputs(t *testing.T) {
	cfg := func() *configs.Config {
		return config([]string{"pv", "sp", "u"}, blk(10, "pid", "pid", "in:pv=pv", "in:sp=sp", "out:out=u", "p:kp=2", "p:ti=1s"))
	}
	a := newRig(t, cfg(), 10*time.Millisecond)
	a.set("pv", 1)
	a.set("sp", 3)
	a.steps(20)
	held := a.get("u")
	b := newRig(t, cfg(), 10*time.Millisecond)
	if _, err := b.tp.ImportState(a.tp.ExportState(nil)); err != nil {
		t.Fatal(err)
	}
	b.set("pv", 1)
	b.set("sp", 3)
	b.setQuality("pv", tag.Bad, tag.NotConnected)
	b.step()
	if got := b.get("u"); got != held {
		t.Fatalf("held output after import: %v, want %v", got, held)
	}
}

// Malformed exports are refused and change nothing; no input panics.
func TestImportRejectsMalformed(t *testing.T) {
	a := newRig(t, mixed(), 10*time.Millisecond)
	for k := range 30 {
		a.drive(k)
		a.step()
	}
	blob := a.tp.ExportState(nil)
	b := newRig(t, mixed(), 10*time.Millisecond)
	before := b.tp.SaveState(nil)
	bad := map[string][]byte{
		"empty":      nil,
		"magic":      append([]byte("xxxx"), blob[4:]...),
		"version":    append(append([]byte(nil), blob[:4]...), append([]byte{9, 0}, blob[6:]...)...),
		"cut":        blob[:len(blob)-3],
		"trailing":   append(append([]byte(nil), blob...), 1),
		"more count": append(append(append([]byte(nil), blob[:6]...), byte(blob[6]+1), blob[7]), blob[8:]...),
	}
	for name, p := range bad {
		if _, err := b.tp.ImportState(p); !errors.Is(err, blocks.ErrState) {
			t.Errorf("%s: %v, want ErrState", name, err)
		}
	}
	for n := range len(blob) {
		_, _ = b.tp.ImportState(blob[:n])
	}
	if after := b.tp.SaveState(nil); len(after) != len(before) {
		t.Fatal("state length changed")
	} else {
		for i := range after {
			if after[i] != before[i] {
				t.Fatalf("a refused import changed state slot %d", i)
			}
		}
	}
}

func FuzzImportState(f *testing.F) {
	r := newRig(f, mixed(), 10*time.Millisecond)
	f.Add(r.tp.ExportState(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _ = r.tp.ImportState(p)
	})
}

// Export (on the real-time thread at the switch) allocates nothing with a
// buffer of ExportLen; import allocates nothing after its first call.
func TestExportImportAllocs(t *testing.T) {
	r := newRig(t, mixed(), 10*time.Millisecond)
	buf := make([]byte, 0, r.tp.ExportLen())
	if n := testing.AllocsPerRun(100, func() { buf = r.tp.ExportState(buf[:0]) }); n != 0 {
		t.Fatalf("ExportState: %v allocations per run", n)
	}
	if _, err := r.tp.ImportState(buf); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = r.tp.ImportState(buf) }); n != 0 {
		t.Fatalf("ImportState: %v allocations per run", n)
	}
}

func BenchmarkExportState(b *testing.B) {
	r := newRig(b, mixed(), 10*time.Millisecond)
	buf := make([]byte, 0, r.tp.ExportLen())
	b.ReportAllocs()
	for b.Loop() {
		buf = r.tp.ExportState(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes/export")
}
