// Package modbustest provides fakes for testing Modbus clients: a raw Modbus
// TCP server whose answers a test writes byte by byte (malformed, truncated,
// wrong transaction ids, exceptions, silence). It listens on 127.0.0.1 on a
// port picked at run time and needs no privileges.
package modbustest

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"
)

// Reply is what a RawServer does with one request frame: write Bytes (may
// be empty), then close the connection if Close is set, after waiting Delay.
type Reply struct {
	Bytes []byte
	Delay time.Duration
	Close bool
}

// Handler answers one request frame (the full MBAP frame).
type Handler func(req []byte) Reply

// RawServer is a Modbus TCP server that answers with whatever its Handler
// returns, so tests can send crafted frames.
type RawServer struct {
	l       net.Listener
	handler Handler
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	reqs    int
}

// NewRawServer listens on 127.0.0.1:0 and serves h until Close.
func NewRawServer(h Handler) (*RawServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &RawServer{l: l, handler: h, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the server's host:port.
func (s *RawServer) Addr() string { return s.l.Addr().String() }

// Requests is how many request frames arrived.
func (s *RawServer) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

// Close stops the server and closes every connection.
func (s *RawServer) Close() error {
	err := s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *RawServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *RawServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	for {
		var hdr [7]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:]))
		if n < 1 {
			return
		}
		req := make([]byte, 6+n)
		copy(req, hdr[:])
		if _, err := io.ReadFull(c, req[7:]); err != nil {
			return
		}
		s.mu.Lock()
		s.reqs++
		s.mu.Unlock()
		r := s.handler(req)
		time.Sleep(r.Delay)
		if len(r.Bytes) > 0 {
			if _, err := c.Write(r.Bytes); err != nil {
				return
			}
		}
		if r.Close {
			return
		}
	}
}

// Frame builds a Modbus TCP frame answering req with pdu (function code and
// data), keeping req's transaction id and unit id.
func Frame(req []byte, pdu ...byte) []byte {
	out := make([]byte, 7+len(pdu))
	copy(out, req[:4])
	binary.BigEndian.PutUint16(out[4:], uint16(1+len(pdu)))
	out[6] = req[6]
	copy(out[7:], pdu)
	return out
}

// Registers answers a read request (FC3/FC4) for req with the registers
// from regs starting at address 0.
func Registers(req []byte, regs []uint16) []byte {
	addr := int(binary.BigEndian.Uint16(req[8:]))
	qty := int(binary.BigEndian.Uint16(req[10:]))
	pdu := []byte{req[7], byte(2 * qty)}
	for i := 0; i < qty; i++ {
		var v uint16
		if addr+i < len(regs) {
			v = regs[addr+i]
		}
		pdu = binary.BigEndian.AppendUint16(pdu, v)
	}
	return Frame(req, pdu...)
}
