package blocks

import (
	"encoding/binary"
	"fmt"
	"github.com/mkrt/mkrt/shm/wire"
	"math"
)

// State transfer by block name, for the hand-over of a running plant to a
// program compiled from a changed config (blocks added, removed or
// rewired). Unlike SaveState/LoadState, which need the very same program,
// ExportState writes each block's state under its name and type, and
// ImportState loads every block whose name, type and state size match:
// new blocks start fresh, removed blocks are dropped.
//
// The encoding (little-endian): "mkbs", u16 version, u16 block count, then
// per block: u8 name length, name, u8 type length, type, u16 state length,
// u16 output count, state values and held outputs as float64 bits.

const (
	xferMagic   = "mkbs"
	xferVersion = 1
	xferHead    = 8
)

// ExportLen is the most bytes ExportState appends.
func (tp *TaskProgram) ExportLen() int {
	n := xferHead
	for _, b := range tp.blocks {
		n += 6 + min(len(b.name), 255) + len(b.typ.Name) + 8*(b.typ.state+len(b.typ.Outputs))
	}
	return n
}

// ExportState appends the state of every block (integrators, filters,
// timers, counters, delays) and the outputs it holds, by block name and
// type, to dst and returns the extended slice. Call it on the task's thread
// between cycles.
//
// Hot path: no allocation when dst has room for ExportLen more bytes.
func (tp *TaskProgram) ExportState(dst []byte) []byte {
	dst = append(dst, xferMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, xferVersion)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(tp.blocks)))
	for _, b := range tp.blocks {
		name := b.name[:min(len(b.name), 255)] // a longer name does not match and starts fresh
		dst = append(dst, byte(len(name)))
		dst = append(dst, name...)
		dst = append(dst, byte(len(b.typ.Name)))
		dst = append(dst, b.typ.Name...)
		nout := len(b.typ.Outputs)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(b.typ.state))
		dst = binary.LittleEndian.AppendUint16(dst, uint16(nout))
		for _, v := range tp.state[b.st : b.st+int32(b.typ.state)] {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
		for _, v := range tp.regs[b.out : b.out+int32(nout)] {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	}
	return dst
}

// xferBlock is one decoded block of an export.
type xferBlock struct {
	name, typ   []byte
	nstate, out int
	vals        []byte
}

// nextBlock decodes the block at p[off:]; ok is false when the export is cut
// short.
func nextBlock(p []byte, off int) (b xferBlock, next int, ok bool) {
	take := func(n int) ([]byte, bool) {
		if n < 0 || off+n > len(p) {
			return nil, false
		}
		s := p[off : off+n]
		off += n
		return s, true
	}
	var s []byte
	if s, ok = take(1); !ok {
		return b, 0, false
	}
	if b.name, ok = take(int(s[0])); !ok {
		return b, 0, false
	}
	if s, ok = take(1); !ok {
		return b, 0, false
	}
	if b.typ, ok = take(int(s[0])); !ok {
		return b, 0, false
	}
	if s, ok = take(4); !ok {
		return b, 0, false
	}
	b.nstate, b.out = int(binary.LittleEndian.Uint16(s)), int(binary.LittleEndian.Uint16(s[2:]))
	if b.vals, ok = take(8 * (b.nstate + b.out)); !ok {
		return b, 0, false
	}
	return b, off, true
}

// ImportState loads state exported by ExportState of this or another
// program: every block whose name and type match and whose state size and
// output count match continues from the exported state and outputs. A
// malformed export is ErrState and changes nothing. Call it on the task's
// thread between cycles.
//
// No allocation after the first call.
func (tp *TaskProgram) ImportState(src []byte) (wire.BlockCounts, error) {
	var st wire.BlockCounts
	if len(src) < xferHead || string(src[:4]) != xferMagic {
		return st, fmt.Errorf("%w: task %q: not a block state export", ErrState, tp.name)
	}
	if v := binary.LittleEndian.Uint16(src[4:]); v != xferVersion {
		return st, fmt.Errorf("%w: task %q: block state export version %d, want %d", ErrState, tp.name, v, xferVersion)
	}
	n := int(binary.LittleEndian.Uint16(src[6:]))
	off := xferHead
	for range n { // check the whole export before changing anything
		var ok bool
		if _, off, ok = nextBlock(src, off); !ok {
			return st, fmt.Errorf("%w: task %q: block state export is cut short", ErrState, tp.name)
		}
	}
	if off != len(src) {
		return st, fmt.Errorf("%w: task %q: %d bytes after the last block", ErrState, tp.name, len(src)-off)
	}
	if len(tp.seen) != len(tp.blocks) {
		tp.seen = make([]bool, len(tp.blocks))
	}
	clear(tp.seen)
	off = xferHead
	for range n {
		var xb xferBlock
		xb, off, _ = nextBlock(src, off)
		bi, ok := tp.index[string(xb.name)]
		if !ok || tp.seen[bi] {
			st.Dropped++
			continue
		}
		b := &tp.blocks[bi]
		if string(xb.typ) != b.typ.Name || xb.nstate != b.typ.state || xb.out != len(b.typ.Outputs) {
			st.Dropped++
			continue
		}
		tp.seen[bi] = true
		st.Carried++
		for k := range xb.nstate {
			tp.state[int(b.st)+k] = math.Float64frombits(binary.LittleEndian.Uint64(xb.vals[8*k:]))
		}
		for k := range xb.out {
			tp.regs[int(b.out)+k] = math.Float64frombits(binary.LittleEndian.Uint64(xb.vals[8*(xb.nstate+k):]))
		}
	}
	st.Fresh = len(tp.blocks) - st.Carried
	return st, nil
}
