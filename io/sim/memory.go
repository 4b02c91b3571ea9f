package sim

import (
	"math"
	"sync"

	mb "github.com/simonvetter/modbus"
)

// Memory is the four Modbus data areas of a simulated device.
type Memory struct {
	Coils    []bool
	Discrete []bool
	Holding  []uint16
	Input    []uint16
}

// Float32 reads a float32 (ABCD) from two registers at addr of area.
func Float32(area []uint16, addr int) float64 {
	if addr < 0 || addr+1 >= len(area) {
		return 0
	}
	return float64(math.Float32frombits(uint32(area[addr])<<16 | uint32(area[addr+1])))
}

// PutFloat32 writes v as a float32 (ABCD) into two registers at addr of area.
func PutFloat32(area []uint16, addr int, v float64) {
	if addr < 0 || addr+1 >= len(area) {
		return
	}
	b := math.Float32bits(float32(v))
	area[addr], area[addr+1] = uint16(b>>16), uint16(b)
}

// Bank is a Memory served over Modbus: it implements
// github.com/simonvetter/modbus's RequestHandler. All access goes through
// its lock, so a model may update it while clients read and write.
type Bank struct {
	mu  sync.Mutex
	mem Memory
}

// NewBank returns a bank with the given area sizes, all zero.
func NewBank(coils, discrete, holding, input int) *Bank {
	return &Bank{mem: Memory{Coils: make([]bool, coils), Discrete: make([]bool, discrete),
		Holding: make([]uint16, holding), Input: make([]uint16, input)}}
}

// Update runs f with the memory locked.
func (b *Bank) Update(f func(m *Memory)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.mem)
}

// Snapshot returns a copy of the memory.
func (b *Bank) Snapshot() Memory {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Memory{Coils: append([]bool(nil), b.mem.Coils...), Discrete: append([]bool(nil), b.mem.Discrete...),
		Holding: append([]uint16(nil), b.mem.Holding...), Input: append([]uint16(nil), b.mem.Input...)}
}

func span(n int, addr, qty uint16) (int, int, error) {
	lo, hi := int(addr), int(addr)+int(qty)
	if qty == 0 || hi > n {
		return 0, 0, mb.ErrIllegalDataAddress
	}
	return lo, hi, nil
}

// HandleCoils reads or writes coils.
func (b *Bank) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	return handleArea(b, b.mem.Coils, req.Addr, req.Quantity, req.IsWrite, req.Args)
}

// HandleDiscreteInputs reads discrete inputs.
func (b *Bank) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	return handleArea(b, b.mem.Discrete, req.Addr, req.Quantity, false, nil)
}

// HandleHoldingRegisters reads or writes holding registers.
func (b *Bank) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	return handleArea(b, b.mem.Holding, req.Addr, req.Quantity, req.IsWrite, req.Args)
}

// HandleInputRegisters reads input registers.
func (b *Bank) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	return handleArea(b, b.mem.Input, req.Addr, req.Quantity, false, nil)
}

func handleArea[T any](b *Bank, area []T, addr, qty uint16, write bool, args []T) ([]T, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lo, hi, err := span(len(area), addr, qty)
	if err != nil {
		return nil, err
	}
	if write {
		if len(args) != hi-lo {
			return nil, mb.ErrIllegalDataValue
		}
		copy(area[lo:hi], args)
		return nil, nil
	}
	return append([]T(nil), area[lo:hi]...), nil
}
