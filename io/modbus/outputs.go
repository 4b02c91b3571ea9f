package modbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	gb "github.com/goburrow/modbus"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/shm/tag"
)

// writeOutputs writes the outputs that changed since they were last written
// (all armed outputs when write_every is due), coalescing each block of
// back-to-back outputs into one request. A request that fails for a reason
// other than a protocol exception returns the error: the connection is lost.
func (s *Scanner) writeOutputs(ctx context.Context) error {
	o, _ := s.out.Front()
	full := false
	if we := s.dev.WriteEvery.D(); we > 0 && time.Since(s.lastFull) >= we {
		full = true
	}
	var sent bool
	for wi := range s.plan.writes {
		r := &s.plan.writes[wi]
		lo, hi := -1, -1
		for k, i := range r.Tags {
			if s.due(o, i, full) {
				if lo < 0 {
					lo = k
				}
				hi = k
			}
		}
		if lo < 0 {
			continue
		}
		// Unarmed outputs inside the span are not written: split there.
		for k := lo; k <= hi; {
			j := k
			for j <= hi && o.armed[r.Tags[j]] {
				j++
			}
			if j > k {
				if err := s.writeSpan(ctx, r, o, r.Tags[k:j]); err != nil && dropsConnection(err) {
					return err
				}
				sent = true
			}
			k = j + 1
		}
	}
	for _, i := range s.plan.masks {
		if !s.due(o, i, full) {
			continue
		}
		if err := s.writeMask(ctx, o, i); err != nil && dropsConnection(err) {
			return err
		}
		sent = true
	}
	if full && (sent || len(s.plan.writes)+len(s.plan.masks) == 0) {
		s.lastFull = time.Now()
	}
	return nil
}

// due reports whether armed output i must be written now.
func (s *Scanner) due(o *outputs, i int, full bool) bool {
	if !o.armed[i] {
		return false
	}
	if full || !s.written[i] {
		return true
	}
	if s.plan.bindings[i].typ == tag.String {
		return o.text[i] != s.lastText[i]
	}
	return math.Float64bits(o.values[i]) != math.Float64bits(s.lastOut[i])
}

// writeSpan writes the back-to-back outputs tags (binding indexes) of block r.
func (s *Scanner) writeSpan(ctx context.Context, r *Request, o *outputs, tags []int) error {
	first, last := &s.plan.bindings[tags[0]], &s.plan.bindings[tags[len(tags)-1]]
	addr, qty := first.addr, last.end()-first.addr
	var op func(c gb.Client) ([]byte, error)
	if r.Area == configs.AreaCoil {
		clear(s.bits[:(qty+7)/8])
		for _, i := range tags {
			putBit(s.bits[:], s.plan.bindings[i].addr-addr, o.values[i] != 0)
		}
		op = func(c gb.Client) ([]byte, error) { return writeCoils(c, addr, qty, s.bits[:(qty+7)/8]) }
	} else {
		for _, i := range tags {
			b := &s.plan.bindings[i]
			w := s.wire[2*(b.addr-addr) : 2*(b.end()-addr)]
			if b.typ == tag.String {
				register.EncodeString(w, b.order, o.text[i])
			} else {
				raw := o.values[i]
				if b.typ.Numeric() {
					raw = (raw - b.offset) / b.scale
				}
				register.Encode(w, b.typ, b.order, raw)
			}
		}
		op = func(c gb.Client) ([]byte, error) { return writeRegisters(c, addr, s.wire[:2*qty]) }
	}
	err := s.send(ctx, op, func() string { return fmt.Sprintf("write %s %d+%d", r.Area, addr, qty) })
	if err == nil {
		for _, i := range tags {
			s.written[i], s.lastOut[i], s.lastText[i] = true, o.values[i], o.text[i]
		}
	}
	if s.wrote != nil {
		s.wrote(tags, err)
	}
	return err
}

// writeRegisters writes wire (two bytes a register) to the holding
// registers at addr: FC6 for one register, FC16 for more.
func writeRegisters(c gb.Client, addr int, wire []byte) ([]byte, error) {
	if len(wire) == 2 {
		return c.WriteSingleRegister(uint16(addr), uint16(wire[0])<<8|uint16(wire[1]))
	}
	return c.WriteMultipleRegisters(uint16(addr), uint16(len(wire)/2), wire)
}

// writeCoils writes qty coils from packed bits at addr: FC5 for one coil,
// FC15 for more.
func writeCoils(c gb.Client, addr, qty int, packed []byte) ([]byte, error) {
	if qty == 1 {
		v := uint16(0)
		if packed[0]&1 != 0 {
			v = 0xFF00
		}
		return c.WriteSingleCoil(uint16(addr), v)
	}
	return c.WriteMultipleCoils(uint16(addr), uint16(qty), packed)
}

// writeMask writes one bit of a holding register with FC22, leaving the
// other bits as they are on the device.
func (s *Scanner) writeMask(ctx context.Context, o *outputs, i int) error {
	b := &s.plan.bindings[i]
	bit := register.WireBit(b.order, b.bit) // the mask addresses the register as the device holds it
	and, or := ^uint16(1<<bit), uint16(0)
	if o.values[i] != 0 {
		or = 1 << bit
	}
	what := func() string { return fmt.Sprintf("write bit %d of holding %d", b.bit, b.addr) }
	mask := func(c gb.Client) ([]byte, error) { return c.MaskWriteRegister(uint16(b.addr), and, or) }
	if s.noMask {
		// Read-modify-write for devices without FC22: another writer of the
		// same register between the two requests would be overwritten.
		mask = func(c gb.Client) ([]byte, error) {
			reg, err := c.ReadHoldingRegisters(uint16(b.addr), 1)
			if err != nil {
				return nil, err
			}
			if len(reg) != 2 {
				return nil, fmt.Errorf("%w: %d data bytes, want 2", ErrBadFrame, len(reg))
			}
			return c.WriteSingleRegister(uint16(b.addr), (uint16(reg[0])<<8|uint16(reg[1]))&and|or)
		}
	}
	err := s.send(ctx, mask, what)
	var ex *ExceptionError
	if !s.noMask && errors.As(err, &ex) && ex.Code == gb.ExceptionCodeIllegalFunction {
		s.noMask = true
		s.log.Info("modbus: device has no mask write (FC22); writing bits by read-modify-write", "device", s.dev.Name)
		return s.writeMask(ctx, o, i)
	}
	if err == nil {
		s.written[i], s.lastOut[i] = true, o.values[i]
	}
	if s.wrote != nil {
		s.one[0] = i
		s.wrote(s.one[:], err)
	}
	return err
}

// send runs one write request on a connected device and counts it; a
// keep-alive that has come due goes first.
func (s *Scanner) send(ctx context.Context, op func(c gb.Client) ([]byte, error), what func() string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.ensureConnected(ctx)
	if err == nil {
		err = s.keepAliveDue()
	}
	if err != nil {
		s.record(err)
		return err
	}
	s.mu.Lock()
	s.stats.Writes++
	s.mu.Unlock()
	_, err = s.do(op, what)
	if err != nil {
		s.record(err)
		if !dropsConnection(err) {
			s.log.Warn("modbus: output write refused", "device", s.dev.Name, "err", err)
		}
	}
	return err
}
