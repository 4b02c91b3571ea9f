package modbus

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// Protocol limits of one request (Modbus application protocol v1.1b3).
const (
	maxRegisters      = 125  // FC3, FC4
	maxBits           = 2000 // FC1, FC2
	maxWriteRegisters = 123  // FC16
	maxWriteBits      = 1968 // FC15
)

// Defaults of a device's zero-valued settings (see configs.Device).
const (
	DefaultUnitID  = 1
	DefaultTimeout = 500 * time.Millisecond
	DefaultPoll    = 100 * time.Millisecond
	DefaultRetries = 1
	DefaultMaxGap  = 8
)

// WithDefaults returns dev with its zero-valued settings filled in.
func WithDefaults(dev configs.Device) configs.Device {
	if dev.UnitID == 0 {
		dev.UnitID = DefaultUnitID
	}
	if dev.Timeout == 0 {
		dev.Timeout = configs.Duration(DefaultTimeout)
	}
	if dev.Poll == 0 {
		dev.Poll = configs.Duration(DefaultPoll)
	}
	if dev.Retries == 0 {
		dev.Retries = DefaultRetries
	}
	if dev.MaxGap == 0 {
		dev.MaxGap = DefaultMaxGap
	}
	if dev.Serial.BaudRate == 0 {
		dev.Serial.BaudRate = 19200
	}
	if dev.Serial.DataBits == 0 {
		dev.Serial.DataBits = 8
	}
	if dev.Serial.Parity == "" {
		dev.Serial.Parity = "E"
	}
	if dev.Serial.StopBits == 0 {
		dev.Serial.StopBits = 1
	}
	return dev
}

// binding is one device tag: where it lives on the device and how it is
// decoded. idx is its index among the device's tags.
type binding struct {
	name     string
	id       tag.ID
	idx      int
	area     configs.Area
	addr     int
	regs     int // registers (register areas) or 1 (bit areas)
	typ      tag.DataType
	order    configs.Order
	bit      int // -1: whole register(s)
	length   int // string bytes
	scale    float64
	offset   float64
	min, max float64
	read     bool
	write    bool
}

// bitArea reports whether the binding is in a one-bit-per-address area.
func (b *binding) bitArea() bool { return b.area == configs.AreaCoil || b.area == configs.AreaDiscrete }

// end is the address after the binding.
func (b *binding) end() int { return b.addr + b.regs }

// Request is one grouped Modbus request of a device's poll or output write.
type Request struct {
	Area     configs.Area
	Function byte
	Address  int
	Quantity int
	// Tags are the indexes (in the device's tag order) of the tags it carries.
	Tags []int
}

func (r Request) String() string {
	return fmt.Sprintf("fc%d %s %d+%d", r.Function, r.Area, r.Address, r.Quantity)
}

// plan is a device's bindings and its grouped requests.
type plan struct {
	bindings []binding
	reads    []Request
	writes   []Request // coalescable output blocks (FC15/FC16 or FC5/FC6)
	masks    []int     // bit-of-register outputs, written with FC22 one by one
	wd       *devWatchdog
}

// newPlan resolves a device's tags against the table and groups them.
// Every problem is reported, each at the position of the tag in the config.
func newPlan(dev configs.Device, tab *tag.Table) (*plan, error) {
	var errs configs.Errors
	p := &plan{}
	for i, it := range dev.Tags {
		b, err := bind(it, tab)
		if err != nil {
			errs.Add(it.Pos, "device %s tag %s: %v", dev.Name, it.Name, err)
			continue
		}
		b.idx = i
		p.bindings = append(p.bindings, b)
	}
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	wd, err := newDevWatchdog(&dev)
	if err != nil {
		return nil, err
	}
	p.wd = wd
	for _, area := range []configs.Area{configs.AreaCoil, configs.AreaDiscrete, configs.AreaHolding, configs.AreaInput} {
		p.reads = append(p.reads, groupReads(p.bindings, area, dev.MaxGap)...)
	}
	p.writes = append(groupWrites(p.bindings, configs.AreaHolding), groupWrites(p.bindings, configs.AreaCoil)...)
	for i := range p.bindings {
		if b := &p.bindings[i]; b.write && b.area == configs.AreaHolding && b.bit >= 0 {
			p.masks = append(p.masks, i)
		}
	}
	return p, nil
}

func bind(it configs.IOTag, tab *tag.Table) (binding, error) {
	id, ok := tab.Lookup(it.Name)
	if !ok {
		return binding{}, fmt.Errorf("not in the tag table")
	}
	info := tab.Info[id]
	b := binding{name: it.Name, id: id, area: it.Area, addr: it.Address, typ: info.Type, order: it.Order,
		bit: -1, length: it.Length, scale: 1, offset: it.Offset, min: info.Min, max: info.Max,
		read: info.Access.Readable(), write: info.Access.Writable()}
	if b.order == "" {
		b.order = configs.ABCD
	}
	if it.Scale != nil {
		b.scale = *it.Scale
	}
	if it.Bit != nil {
		b.bit = *it.Bit
	}
	switch {
	case b.scale == 0 || math.IsNaN(b.scale) || math.IsInf(b.scale, 0):
		return b, fmt.Errorf("scale must be a finite non-zero number")
	case b.order != configs.ABCD && b.order != configs.CDAB && b.order != configs.BADC && b.order != configs.DCBA:
		return b, fmt.Errorf("unknown order %q (ABCD, CDAB, BADC or DCBA)", b.order)
	case !b.typ.Valid():
		return b, fmt.Errorf("unknown type %q", b.typ)
	}
	switch b.area {
	case configs.AreaCoil, configs.AreaDiscrete:
		if b.typ != tag.Bool || b.bit >= 0 {
			return b, fmt.Errorf("%s tags are bool without bit", b.area)
		}
		if b.area == configs.AreaDiscrete && b.write {
			return b, fmt.Errorf("discrete inputs cannot be written")
		}
		b.regs = 1
	case configs.AreaHolding, configs.AreaInput:
		if b.area == configs.AreaInput && b.write {
			return b, fmt.Errorf("input registers cannot be written")
		}
		if b.bit >= 0 && (b.bit > 15 || b.typ != tag.Bool) {
			return b, fmt.Errorf("bit must be 0-15 on a bool tag")
		}
		if b.typ == tag.String && (b.length <= 0 || b.length > 2*maxRegisters) {
			return b, fmt.Errorf("string length must be 1-%d bytes", 2*maxRegisters)
		}
		b.regs = b.typ.Registers(b.length)
	default:
		return b, fmt.Errorf("unknown area %q", b.area)
	}
	if b.addr < 0 || b.end() > 65536 {
		return b, fmt.Errorf("address %d+%d is outside 0-65535", b.addr, b.regs)
	}
	return b, nil
}

func sortedIn(bs []binding, keep func(*binding) bool) []int {
	var idx []int
	for i := range bs {
		if keep(&bs[i]) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(i, j int) bool { return bs[idx[i]].addr < bs[idx[j]].addr })
	return idx
}

// groupReads groups the readable tags of one area into the fewest requests:
// a request spans at most the protocol limit and no run of unused addresses
// wider than maxGap (a negative max_gap in the config: no gaps at all).
func groupReads(bs []binding, area configs.Area, maxGap int) []Request {
	idx := sortedIn(bs, func(b *binding) bool { return b.area == area && b.read })
	limit, fc := maxRegisters, readFunction(area)
	if area == configs.AreaCoil || area == configs.AreaDiscrete {
		limit = maxBits
	}
	maxGap = max(maxGap, 0)
	var out []Request
	for _, i := range idx {
		b := &bs[i]
		if n := len(out); n > 0 {
			r := &out[n-1]
			end := r.Address + r.Quantity
			if b.addr-end <= maxGap && max(end, b.end())-r.Address <= limit {
				r.Quantity = max(end, b.end()) - r.Address
				r.Tags = append(r.Tags, i)
				continue
			}
		}
		out = append(out, Request{Area: area, Function: fc, Address: b.addr, Quantity: b.regs, Tags: []int{i}})
	}
	return out
}

// groupWrites groups the writable whole-register (or coil) outputs of one
// area into blocks of back-to-back addresses, each writable in one request.
func groupWrites(bs []binding, area configs.Area) []Request {
	idx := sortedIn(bs, func(b *binding) bool { return b.area == area && b.write && b.bit < 0 })
	limit := maxWriteRegisters
	if area == configs.AreaCoil {
		limit = maxWriteBits
	}
	var out []Request
	for _, i := range idx {
		b := &bs[i]
		if n := len(out); n > 0 {
			r := &out[n-1]
			if b.addr == r.Address+r.Quantity && r.Quantity+b.regs <= limit {
				r.Quantity += b.regs
				r.Tags = append(r.Tags, i)
				continue
			}
		}
		out = append(out, Request{Area: area, Address: b.addr, Quantity: b.regs, Tags: []int{i}})
	}
	for k := range out {
		out[k].Function = writeFunction(area, out[k].Quantity)
	}
	return out
}

func readFunction(area configs.Area) byte {
	switch area {
	case configs.AreaCoil:
		return 1
	case configs.AreaDiscrete:
		return 2
	case configs.AreaHolding:
		return 3
	}
	return 4
}

// writeFunction is FC5/FC6 for one coil/register, else FC15/FC16.
func writeFunction(area configs.Area, quantity int) byte {
	switch {
	case area == configs.AreaCoil && quantity == 1:
		return 5
	case area == configs.AreaCoil:
		return 15
	case quantity == 1:
		return 6
	}
	return 16
}
