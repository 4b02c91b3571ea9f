package modbusserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
)

// roleOID is the role extension of a Modbus/TCP Security client
// certificate (MBAPS spec, "RoleOID"): one ASN.1 UTF8String.
var roleOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 50316, 802, 1}

// The limits of one request's quantity (Modbus application protocol
// v1.1b3, §6): beyond them a request is answered with exception 3.
const (
	maxReadBits   = 2000
	maxReadRegs   = 125
	maxWriteBits  = 1968
	maxWriteRegs  = 123
	mbapHeader    = 7   // transaction, protocol, length, unit
	maxMBAPLength = 254 // unit id + the longest PDU (253 bytes)
)

// Modbus exception codes.
const (
	exIllegalFunction = 1
	exIllegalAddress  = 2
	exIllegalValue    = 3
	exDeviceFailure   = 4
	exBusy            = 6
	exGWPath          = 0x0a
	exGWTarget        = 0x0b
)

// limits holds the connection slots: MaxClients in all, at most
// MaxClientsPerAddress of them for one client address.
type limits struct {
	mu      sync.Mutex
	total   int
	perAddr map[netip.Addr]int
	conns   map[net.Conn]struct{}
}

// take reserves a slot for a client at ip, or says why there is none.
func (l *limits) take(ip netip.Addr, maxAll, maxOne int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= maxAll:
		return fmt.Errorf("all %d client slots are taken (max_clients)", maxAll)
	case l.perAddr[ip] >= maxOne:
		return fmt.Errorf("%s holds %d connections already (max_clients_per_address)", ip, maxOne)
	}
	l.total++
	l.perAddr[ip]++
	return nil
}

func (l *limits) give(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perAddr[ip]--; l.perAddr[ip] <= 0 {
		delete(l.perAddr, ip)
	}
}

func (l *limits) track(c net.Conn, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
}

// closeAll closes every client connection (the server stops).
func (l *limits) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// serve accepts clients on ln until it is closed.
func (s *Server) serve(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.lim.closeAll()
				return
			}
			s.log.Warn("modbusserver: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ip := peerIP(c.RemoteAddr())
		if err := s.lim.take(ip, s.cfg.MaxClients, s.cfg.MaxClientsPerAddress); err != nil {
			// The newest connection is refused at once, so that a client
			// retries instead of waiting on a connection never served.
			s.log.Warn("modbusserver: connection refused", "peer", c.RemoteAddr().String(), "why", err)
			c.Close()
			continue
		}
		s.lim.track(c, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.lim.give(ip)
			defer s.lim.track(c, false)
			defer c.Close()
			s.client(c)
		}()
	}
}

func peerIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// client serves one connection: the TLS handshake over MBAPS, then one
// request after the other, each answered before the next is read. A
// connection idle for IdleTimeout is closed; every request restarts the
// timer (a client that polls keeps its slot: the per-address limit is what
// keeps one address from holding them all).
func (s *Server) client(c net.Conn) {
	who := plant.Principal{Protocol: "modbus", Peer: c.RemoteAddr().String()}
	if s.tls != nil {
		tc := tls.Server(c, s.tls)
		c.SetDeadline(time.Now().Add(min(s.cfg.IdleTimeout, 10*time.Second)))
		if err := tc.Handshake(); err != nil {
			s.log.Warn("modbusserver: TLS handshake", "peer", who.Peer, "err", err)
			return
		}
		st := tc.ConnectionState()
		if len(st.PeerCertificates) == 0 {
			return
		}
		cert := st.PeerCertificates[0]
		who.User = cert.Subject.CommonName
		role, err := certRole(cert)
		if err != nil {
			s.log.Warn("modbusserver: client certificate role", "peer", who.Peer, "subject", who.User, "err", err)
		}
		who.Role = role
		c = tc
	}
	var buf [mbapHeader + maxMBAPLength]byte
	for {
		c.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if _, err := io.ReadFull(c, buf[:mbapHeader]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(buf[4:]))
		if binary.BigEndian.Uint16(buf[2:]) != 0 || n < 2 || n > maxMBAPLength {
			// not Modbus: there is no frame to answer
			s.log.Debug("modbusserver: bad MBAP header, closing", "peer", who.Peer, "header", fmt.Sprintf("%x", buf[:mbapHeader]))
			return
		}
		if _, err := io.ReadFull(c, buf[mbapHeader:mbapHeader+n-1]); err != nil {
			return
		}
		res := s.request(who, buf[6], buf[mbapHeader:mbapHeader+n-1])
		out := make([]byte, mbapHeader, mbapHeader+len(res))
		copy(out, buf[:4])
		binary.BigEndian.PutUint16(out[4:], uint16(1+len(res)))
		out[6] = buf[6]
		if _, err := c.Write(append(out, res...)); err != nil {
			return
		}
	}
}

// certRole is the role a client certificate carries ("" when none).
func certRole(cert *x509.Certificate) (string, error) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(roleOID) {
			var role string
			if _, err := asn1.UnmarshalWithParams(e.Value, &role, "utf8"); err != nil {
				return "", fmt.Errorf("role extension %s is not a UTF8String: %w", roleOID, err)
			}
			return role, nil
		}
	}
	return "", nil
}

// request answers one PDU (function code and data) with the response PDU.
func (s *Server) request(who plant.Principal, unit byte, pdu []byte) []byte {
	fc, d := pdu[0], pdu[1:]
	res, err := s.dispatch(who, unit, fc, d)
	if err != nil {
		return []byte{0x80 | fc, exceptionCode(err)}
	}
	return append([]byte{fc}, res...)
}

// errQuantity is a request whose quantity or byte count is out of bounds.
var errQuantity = fmt.Errorf("modbusserver: quantity out of bounds: %w", modbus.ErrIllegalDataValue)

func (s *Server) dispatch(who plant.Principal, unit, fc byte, d []byte) ([]byte, error) {
	u16 := func(i int) uint16 { return binary.BigEndian.Uint16(d[i:]) }
	// span checks the length, the quantity and the address range of a
	// request that starts with address and quantity.
	span := func(want, most int) (addr, qty uint16, err error) {
		if len(d) < 4 || (want >= 0 && len(d) != want) {
			return 0, 0, errQuantity
		}
		addr, qty = u16(0), u16(2)
		if qty == 0 || int(qty) > most {
			return 0, 0, errQuantity
		}
		if int(addr)+int(qty) > 0x10000 {
			return 0, 0, modbus.ErrIllegalDataAddress
		}
		return addr, qty, nil
	}
	switch fc {
	case 1, 2: // read coils, read discrete inputs
		addr, qty, err := span(4, maxReadBits)
		if err != nil {
			return nil, err
		}
		ar := configs.AreaDiscrete
		if fc == 1 {
			ar = configs.AreaCoil
		}
		bs, err := s.readBits(ar, unit, addr, qty)
		if err != nil {
			return nil, err
		}
		return append([]byte{byte((len(bs) + 7) / 8)}, packBits(bs)...), nil
	case 3, 4: // read holding, read input registers
		addr, qty, err := span(4, maxReadRegs)
		if err != nil {
			return nil, err
		}
		var rs []uint16
		if fc == 3 {
			rs, err = s.readRegs(configs.AreaHolding, unit, addr, qty)
		} else {
			rs, err = s.readRegs(configs.AreaInput, unit, addr, qty)
		}
		if err != nil {
			return nil, err
		}
		out := []byte{byte(2 * len(rs))}
		for _, r := range rs {
			out = binary.BigEndian.AppendUint16(out, r)
		}
		return out, nil
	case 5: // write single coil
		if len(d) != 4 {
			return nil, errQuantity
		}
		var v bool
		switch u16(2) {
		case 0xff00:
			v = true
		case 0:
		default:
			return nil, errQuantity
		}
		return d, s.writeCoils(who, unit, u16(0), []bool{v})
	case 6: // write single register
		if len(d) != 4 {
			return nil, errQuantity
		}
		return d, s.writeRegs(who, unit, u16(0), []uint16{u16(2)})
	case 15, 16: // write multiple coils, write multiple registers
		if len(d) < 5 {
			return nil, errQuantity
		}
		most, size := maxWriteBits, (int(u16(2))+7)/8
		if fc == 16 {
			most, size = maxWriteRegs, 2*int(u16(2))
		}
		addr, qty, err := span(-1, most)
		if err != nil {
			return nil, err
		}
		if int(d[4]) != size || len(d) != 5+size {
			return nil, errQuantity
		}
		if fc == 15 {
			bs := make([]bool, qty)
			for i := range bs {
				bs[i] = d[5+i/8]&(1<<(i%8)) != 0
			}
			return d[:4], s.writeCoils(who, unit, addr, bs)
		}
		rs := make([]uint16, qty)
		for i := range rs {
			rs[i] = u16(5 + 2*i)
		}
		return d[:4], s.writeRegs(who, unit, addr, rs)
	case 0x2b: // encapsulated interface transport
		if len(d) < 1 || d[0] != 0x0e {
			return nil, modbus.ErrIllegalFunction
		}
		if err := s.unit(unit); err != nil {
			return nil, err
		}
		return s.identify(d[1:])
	}
	return nil, modbus.ErrIllegalFunction
}

func packBits(bs []bool) []byte {
	out := make([]byte, (len(bs)+7)/8)
	for i, b := range bs {
		if b {
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}

// identify answers Read Device Identification (MEI type 14) with the basic
// objects: 0 VendorName, 1 ProductCode, 2 MajorMinorRevision. Stream
// access (codes 1-3) gets all three (regular and extended have none more);
// individual access (code 4) the one asked for.
func (s *Server) identify(d []byte) ([]byte, error) {
	if len(d) != 2 {
		return nil, errQuantity
	}
	code, first := d[0], d[1]
	id := s.cfg.Identification
	objs := []string{id.Vendor, id.Product, id.Version}
	from, to := 0, len(objs)
	switch {
	case code == 4:
		if int(first) >= len(objs) {
			return nil, modbus.ErrIllegalDataAddress
		}
		from, to = int(first), int(first)+1
	case code >= 1 && code <= 3:
		if int(first) < len(objs) {
			from = int(first)
		}
	default:
		return nil, errQuantity
	}
	// conformity 0x81: basic objects, stream and individual access
	out := []byte{0x0e, code, 0x81, 0, 0, byte(to - from)}
	for i := from; i < to; i++ {
		v := objs[i]
		if len(v) > 64 {
			v = v[:64]
		}
		out = append(append(out, byte(i), byte(len(v))), v...)
	}
	return out, nil
}

// exceptionCode is the exception a handler's error answers.
func exceptionCode(err error) byte {
	switch {
	case errors.Is(err, modbus.ErrIllegalFunction):
		return exIllegalFunction
	case errors.Is(err, modbus.ErrIllegalDataAddress):
		return exIllegalAddress
	case errors.Is(err, modbus.ErrIllegalDataValue):
		return exIllegalValue
	case errors.Is(err, modbus.ErrServerDeviceBusy):
		return exBusy
	case errors.Is(err, modbus.ErrGWPathUnavailable):
		return exGWPath
	case errors.Is(err, modbus.ErrGWTargetFailedToRespond):
		return exGWTarget
	}
	return exDeviceFailure
}

// listen opens the listener; ctx ending closes it.
func (s *Server) listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", s.cfg.Listen)
}
