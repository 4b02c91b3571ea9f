package modbus

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

func planOf(t *testing.T, maxGap int, tags ...configs.IOTag) *plan {
	t.Helper()
	dev := WithDefaults(configs.Device{Name: "d", Driver: configs.DriverModbusTCP, Address: "x:1", Tags: tags, MaxGap: maxGap})
	p, err := newPlan(dev, newTable(t, dev))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func requests(rs []Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func TestGroupReads(t *testing.T) {
	var tags []configs.IOTag
	add := func(area configs.Area, addr int, typ tag.DataType) {
		tags = append(tags, configs.IOTag{Name: fmt.Sprintf("%s%d", area, addr), Area: area, Address: addr, Type: typ, Access: tag.Read})
	}
	// Holding: 0-1, gap 8 to 10 (joined), gap 9 to 21 (split), then a run
	// from 100 to 240 that must split at 125 registers.
	add(configs.AreaHolding, 0, tag.Float32)
	add(configs.AreaHolding, 10, "")
	add(configs.AreaHolding, 20, tag.Float64) // 20-23: gap 9 after 10 -> new request
	for a := 100; a < 240; a += 4 {
		add(configs.AreaHolding, a, tag.Int64)
	}
	// Coils: 1999 and 2000 are back to back; 0 is too far.
	add(configs.AreaCoil, 0, "")
	add(configs.AreaCoil, 1999, "")
	add(configs.AreaCoil, 2000, "")
	add(configs.AreaInput, 5, tag.Uint16)
	add(configs.AreaDiscrete, 7, "")
	p := planOf(t, 8, tags...)
	want := []string{"fc1 coil 0+1", "fc1 coil 1999+2", "fc2 discrete 7+1",
		"fc3 holding 0+11", "fc3 holding 20+4", "fc3 holding 100+124", "fc3 holding 224+16", "fc4 input 5+1"}
	if got := requests(p.reads); !slices.Equal(got, want) {
		t.Errorf("reads\n got %v\nwant %v", got, want)
	}
	// 2000 coils at most per request.
	p = planOf(t, 5000, configs.IOTag{Name: "a", Area: configs.AreaCoil, Address: 0}, configs.IOTag{Name: "b", Area: configs.AreaCoil, Address: 1999},
		configs.IOTag{Name: "c", Area: configs.AreaCoil, Address: 2000})
	if got := requests(p.reads); !slices.Equal(got, []string{"fc1 coil 0+2000", "fc1 coil 2000+1"}) {
		t.Errorf("coil reads %v", got)
	}
	// A negative max_gap still joins back-to-back tags.
	p = planOf(t, -1, configs.IOTag{Name: "a", Area: configs.AreaInput, Address: 0}, configs.IOTag{Name: "b", Area: configs.AreaInput, Address: 1},
		configs.IOTag{Name: "c", Area: configs.AreaInput, Address: 3})
	if got := requests(p.reads); !slices.Equal(got, []string{"fc4 input 0+2", "fc4 input 3+1"}) {
		t.Errorf("no-gap reads %v", got)
	}
}

func TestGroupWrites(t *testing.T) {
	w := func(name string, area configs.Area, addr int, typ tag.DataType) configs.IOTag {
		return configs.IOTag{Name: name, Area: area, Address: addr, Type: typ, Access: tag.Write}
	}
	tags := []configs.IOTag{w("a", configs.AreaHolding, 0, tag.Float32), w("b", configs.AreaHolding, 2, ""),
		w("c", configs.AreaHolding, 4, ""), w("d", configs.AreaCoil, 0, ""), w("e", configs.AreaCoil, 1, ""),
		w("f", configs.AreaCoil, 5, "")}
	for a := 1000; a < 1000+130; a++ {
		tags = append(tags, w(fmt.Sprint("r", a), configs.AreaHolding, a, ""))
	}
	p := planOf(t, 8, tags...)
	want := []string{"fc16 holding 0+3", "fc6 holding 4+1", "fc16 holding 1000+123", "fc16 holding 1123+7", "fc15 coil 0+2", "fc5 coil 5+1"}
	if got := requests(p.writes); !slices.Equal(got, want) {
		t.Errorf("writes\n got %v\nwant %v", got, want)
	}
	if len(p.reads) != 0 {
		t.Errorf("write-only tags are read: %v", requests(p.reads))
	}
}

// TestHotPathAllocs proves Latest and SetOutputs allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	dev := tcpDevice("hot", "127.0.0.1:1",
		configs.IOTag{Name: "in", Area: configs.AreaInput, Address: 0, Type: tag.Float32},
		configs.IOTag{Name: "txt", Area: configs.AreaInput, Address: 10, Type: tag.String, Length: 8},
		configs.IOTag{Name: "out", Area: configs.AreaHolding, Address: 0, Access: tag.Write},
		configs.IOTag{Name: "rw", Area: configs.AreaHolding, Address: 5},
		configs.IOTag{Name: "otxt", Area: configs.AreaHolding, Address: 10, Type: tag.String, Length: 4, Access: tag.Write},
		configs.IOTag{Name: "bit", Area: configs.AreaHolding, Address: 20, Bit: ptr(1)})
	tab := newTable(t, dev)
	s, err := NewScanner(dev, tab)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tab.Lookup("out")
	n := testing.AllocsPerRun(1000, func() {
		s.Latest(tab.Samples, tab.Text)
		tab.Samples[id].Value++
		s.SetOutputs(tab.Samples, tab.Text)
	})
	if n != 0 {
		t.Errorf("Latest+SetOutputs allocate %v times per cycle", n)
	}
	// Short slices (a table of another config) are skipped, not a panic.
	s.Latest(nil, nil)
	s.SetOutputs(nil, nil)
}

// TestPollDecodeAllocs proves that decoding a poll's answer on the I/O
// goroutine allocates nothing: every type in every order, a bit, and a
// string once its text is known.
func TestPollDecodeAllocs(t *testing.T) {
	var tags []configs.IOTag
	a := 0
	for _, typ := range tag.DataTypes {
		for _, o := range orders {
			it := configs.IOTag{Name: fmt.Sprintf("%s_%s", typ, o), Area: configs.AreaHolding, Address: a, Type: typ, Order: o}
			if typ == tag.String {
				it.Length = 6
			}
			tags = append(tags, it)
			a += typ.Registers(it.Length)
		}
	}
	tags = append(tags, configs.IOTag{Name: "bit", Area: configs.AreaHolding, Address: a, Bit: ptr(9), Order: configs.BADC})
	dev := tcpDevice("hot", "127.0.0.1:1", tags...)
	s, err := NewScanner(dev, newTable(t, dev))
	if err != nil {
		t.Fatal(err)
	}
	wire := []byte("PUMP-7\x41\x20\x00\x00")
	decodeAll := func() {
		for i := range s.plan.bindings {
			b := &s.plan.bindings[i]
			s.decode(b, wire[:2*b.regs], i)
		}
	}
	decodeAll()
	if n := testing.AllocsPerRun(1000, decodeAll); n != 0 {
		t.Errorf("decoding %d tags allocates %v times per poll", len(s.plan.bindings), n)
	}
}

// TestTripleBufferNeverTears runs a producer and a consumer concurrently:
// every version the consumer sees is whole (all fields of one version) and
// versions never go backwards. Run with -race.
func TestTripleBufferNeverTears(t *testing.T) {
	var tb triple[[]tag.Sample]
	tb.init(func() []tag.Sample { return make([]tag.Sample, 16) })
	const versions = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; v <= versions; v++ {
			b := tb.Back()
			for i := range *b {
				(*b)[i] = tag.Sample{Value: float64(v), Time: int64(v)}
			}
			tb.Publish()
		}
	}()
	last := 0.0
	for last < versions {
		f, _ := tb.Front()
		v := (*f)[0].Value
		for _, s := range *f {
			if s.Value != v || s.Time != int64(v) {
				t.Fatalf("torn read: %v vs %v", s.Value, v)
			}
		}
		if v < last {
			t.Fatalf("version went back from %v to %v", last, v)
		}
		last = v
	}
	wg.Wait()
}
