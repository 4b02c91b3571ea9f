package jailhouse_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/mkrt/mkrt/supervisor/jailhouse"
)

// TestIoctlNumbers checks _IOW(0, n, struct ...) of driver/jailhouse.h; the
// create, load and start numbers also appear literally in
// tools/jailhouse-cell-linux.
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"JAILHOUSE_ENABLE", jailhouse.IoctlEnable, 0x40080000},
		{"JAILHOUSE_DISABLE", jailhouse.IoctlDisable, 0x00000001},
		{"JAILHOUSE_CELL_CREATE", jailhouse.IoctlCellCreate, 0x40100002},
		{"JAILHOUSE_CELL_LOAD", jailhouse.IoctlCellLoad, 0x40300003},
		{"JAILHOUSE_CELL_START", jailhouse.IoctlCellStart, 0x40280004},
		{"JAILHOUSE_CELL_DESTROY", jailhouse.IoctlCellDestroy, 0x40280005},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
		if jailhouse.IoctlName(c.got) != c.name {
			t.Errorf("IoctlName(%#x) = %s", c.got, jailhouse.IoctlName(c.got))
		}
	}
}

// TestArgumentLayouts compares the argument structs with blobs packed as
// jailhouse-cell-linux packs them ('QI4x', 'i4x32sI4xQQQ8x', 'i4x32s').
func TestArgumentLayouts(t *testing.T) {
	le := binary.LittleEndian
	cfg := make([]byte, 424)
	r := jailhouse.CellCreate(cfg)
	want := make([]byte, 16)
	le.PutUint32(want[8:], 424)
	if r.Cmd != jailhouse.IoctlCellCreate || !bytes.Equal(r.Arg, want) || len(r.Pointers) != 1 || r.Pointers[0].Offset != 0 || len(r.Pointers[0].Buf) != 424 {
		t.Errorf("create: %+v", r)
	}

	id := jailhouse.CellID(jailhouse.CellIDUnused, "tank-level")
	want = make([]byte, 40)
	le.PutUint32(want[0:], 0xffffffff)
	copy(want[8:], "tank-level")
	if !bytes.Equal(id, want) {
		t.Errorf("cell id % x", id)
	}
	if s := jailhouse.CellStart("tank-level"); s.Cmd != jailhouse.IoctlCellStart || !bytes.Equal(s.Arg, want) {
		t.Errorf("start %+v", s)
	}
	if s := jailhouse.CellDestroy("tank-level"); s.Cmd != jailhouse.IoctlCellDestroy || !bytes.Equal(s.Arg, want) {
		t.Errorf("destroy %+v", s)
	}

	a, b := []byte("loader"), []byte("kernel!")
	l := jailhouse.CellLoad("tank-level", []jailhouse.Image{{Data: a, Target: 0xf0000}, {Data: b, Target: 0xffe00}})
	want = make([]byte, 48+2*32)
	copy(want, id)
	le.PutUint32(want[40:], 2)
	le.PutUint64(want[48+8:], 6)
	le.PutUint64(want[48+16:], 0xf0000)
	le.PutUint64(want[80+8:], 7)
	le.PutUint64(want[80+16:], 0xffe00)
	if !bytes.Equal(l.Arg, want) || len(l.Pointers) != 2 || l.Pointers[0].Offset != 48 || l.Pointers[1].Offset != 80 {
		t.Errorf("load:\n got % x\nwant % x\n%+v", l.Arg, want, l.Pointers)
	}
	if e := jailhouse.Disable(); e.Cmd != jailhouse.IoctlDisable || e.Arg != nil {
		t.Errorf("disable %+v", e)
	}
}
