// Package modbusserver is the bridge's Modbus TCP server for SCADA: tags
// mapped to coils, discrete inputs, input and holding registers per the
// config's map, with data types, word order and scaling. Values are laid
// out in registers by io/modbus/register, the codec the executive's
// field-device client uses too, so SCADA sees a tag in a given order
// exactly as a device in that order would hold it; a value outside its
// wire type's range is served clamped. Reads are served from the latest
// snapshot of the process image.
//
// Writes. Plaintext Modbus is read-only except for clients whose address
// is in WriteAllow; over MBAPS (Modbus/TCP Security: TLS 1.2+ with client
// certificates) a client writes when the role its certificate carries
// (extension 1.3.6.1.4.1.50316.802.1, a UTF8String) is one of WriteRoles.
// A client that may not write is answered exception 1 (illegal function),
// as a read-only device answers the write functions; exception 2 keeps its
// meaning, an address without a writable tag. Writes go only to writable
// tags, checked against type and min/max; all tags of one request are sent
// to the Plant as one unit (plant.Batcher), applied in one cycle or not at
// all, and answered once the executive accepted or refused them. Every
// write carries its plant.Principal (peer address, certificate subject and
// role) in its context for the audit, and every write refused before the
// plant is recorded with Config.Refuser. Refusals map to exception codes:
// illegal data address (unmapped, read-only, partial multi-register
// value), illegal data value (out of range, wrong type), server device
// busy (command ring full), server device failure (executive not running,
// a unit larger than the command ring).
//
// Connections. github.com/simonvetter/modbus's server closes the
// connection on a quantity outside the protocol's bounds instead of
// answering exception 3, cannot be extended with function 43 (Read Device
// Identification), limits clients only globally and does not give the
// handler the certificate's subject; so this package serves the
// connections itself (conn.go: MBAP framing and the eight data functions)
// and uses the library for its client (tests, the executive's field
// devices) and its error values. MaxClients slots in all, at most
// MaxClientsPerAddress of them for one client address; once they are
// taken, the newest connection is closed at once rather than left waiting.
// A connection without a request for IdleTimeout is closed; each request
// restarts the timer, so a client that polls keeps its slot (that is what
// SCADA does), and the per-address limit is what keeps one address from
// holding all of them. Quantities outside 1-2000 coils / 1-125 registers
// on reads and 1-1968 / 1-123 on writes are answered exception 3. Read
// Device Identification (43/14) answers the basic objects VendorName,
// ProductCode and MajorMinorRevision from Config.Identification.
//
// Switch replaces the register map and the plant behind it atomically while
// the listener and every client connection stay (a hand-over to a new
// generation of the partition).
//
// It needs a TCP port, nothing else.
package modbusserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/metrics"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// ErrMap is a register map that cannot be served.
var ErrMap = errors.New("modbusserver: bad register map")

// Config is the server's listener, limits and map.
type Config struct {
	// Listen is host:port.
	Listen     string
	MaxClients int // default 16
	// MaxClientsPerAddress is the most connections one client address
	// holds; default 4.
	MaxClientsPerAddress int
	// IdleTimeout closes a connection without a request for this long;
	// default 60s.
	IdleTimeout time.Duration
	// UnitID answered; 0 answers every unit id.
	UnitID int
	// TLS: server certificate and the CAs that sign client certificates
	// (both required for MBAPS).
	TLSCert      *tls.Certificate
	TLSClientCAs *x509.CertPool
	// WriteAllow: plaintext clients from these networks may write; every
	// other plaintext client only reads.
	WriteAllow []netip.Prefix
	// WriteRoles: over MBAPS, clients whose certificate carries one of
	// these roles may write; every other client only reads.
	WriteRoles []string
	// Identification answers Read Device Identification; defaults:
	// vendor and product "mkrt", version the build's.
	Identification Identification
	// Refuser records the writes refused before they reached the plant
	// (the bridge passes its audit log); nil records none.
	Refuser plant.Refuser
	Map     []configs.RegisterMap
	// Poll is how often the register image is refreshed; default 10ms.
	Poll         time.Duration
	WriteTimeout time.Duration // default 2s
	Log          *slog.Logger
	Counters     *metrics.Counters
}

// Identification is what Read Device Identification (FC 43/14) answers:
// the basic objects VendorName, ProductCode, MajorMinorRevision.
type Identification struct {
	Vendor, Product, Version string
}

type entry struct {
	id     tag.ID
	area   configs.Area
	addr   int
	n      int // registers (or 1 coil)
	typ    tag.DataType
	order  configs.Order
	scale  float64
	offset float64
}

// area is one Modbus data area's image.
type area struct {
	owner []int32 // entry index per address, -1 unmapped
	regs  []uint16
	bits  []bool
}

// Map is a register map compiled against one plant's tag directory: the
// addresses of each area, the tag behind each, and the register image the
// server answers reads from. New compiles the first from Config.Map; Switch
// puts another in its place.
type Map struct {
	p     plant.Plant
	tags  []tag.Info
	ents  []entry
	areas map[configs.Area]*area

	// the register image, guarded by the Server's mu once the map serves
	samples []tag.Sample
	text    []string
	wire    []byte // refresh's scratch: one entry's registers as wire bytes
	fresh   bool
}

// Server is a Modbus TCP server over a Plant.
type Server struct {
	cfg   Config
	log   *slog.Logger
	count *metrics.Counters

	tls *tls.Config
	lim limits

	mu sync.RWMutex
	m  *Map
}

// New checks the map against the plant's tags and builds the server.
func New(cfg Config, p plant.Plant) (*Server, error) {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 16
	}
	if cfg.MaxClientsPerAddress <= 0 {
		cfg.MaxClientsPerAddress = 4
	}
	if cfg.Identification.Vendor == "" {
		cfg.Identification.Vendor = "mkrt"
	}
	if cfg.Identification.Product == "" {
		cfg.Identification.Product = "mkrt"
	}
	if cfg.Identification.Version == "" {
		cfg.Identification.Version = buildVersion()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Counters == nil {
		cfg.Counters = new(metrics.Counters)
	}
	m, err := NewMap(cfg.Map, p)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "modbus"), count: cfg.Counters, m: m,
		lim: limits{perAddr: map[netip.Addr]int{}, conns: map[net.Conn]struct{}{}}}
	if cfg.TLSCert != nil {
		if cfg.TLSClientCAs == nil {
			return nil, fmt.Errorf("modbusserver: MBAPS needs the CA of client certificates (TLSClientCAs)")
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{*cfg.TLSCert}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: cfg.TLSClientCAs, MinVersion: tls.VersionTLS12}
	}
	return s, nil
}

// buildVersion is the version mkrt was built as ("devel" for a build
// from a working tree).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// NewMap compiles a register map against p's tags; errors wrap ErrMap and
// name every entry that cannot be served.
func NewMap(entries []configs.RegisterMap, p plant.Plant) (*Map, error) {
	mp := &Map{p: p, tags: p.Tags(), areas: map[configs.Area]*area{}}
	byName := map[string]tag.ID{}
	for i, in := range mp.tags {
		byName[in.Name] = tag.ID(i)
	}
	var errs []error
	for _, m := range entries {
		id, ok := byName[m.Tag]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: tag %q does not exist", m.Pos, m.Tag))
			continue
		}
		in := mp.tags[id]
		e := entry{id: id, area: m.Area, addr: m.Address, typ: m.Type, order: m.Order, scale: 1, offset: m.Offset}
		if e.typ == "" {
			e.typ = in.Type
		}
		if e.order == "" {
			e.order = configs.ABCD
		}
		if m.Scale != nil {
			e.scale = *m.Scale
		}
		if e.scale == 0 || math.IsNaN(e.scale) {
			errs = append(errs, fmt.Errorf("%s: %s: scale must not be 0", m.Pos, m.Tag))
			continue
		}
		switch m.Area {
		case configs.AreaCoil, configs.AreaDiscrete:
			if e.typ != tag.Bool {
				errs = append(errs, fmt.Errorf("%s: %s: %s is a bit area: only bool tags fit", m.Pos, m.Tag, m.Area))
				continue
			}
			e.n = 1
		case configs.AreaInput, configs.AreaHolding:
			if (e.typ == tag.String) != (in.Type == tag.String) {
				errs = append(errs, fmt.Errorf("%s: %s: a %s tag cannot be served as %s", m.Pos, m.Tag, in.Type, e.typ))
				continue
			}
			e.n = e.typ.Registers(in.Length)
		default:
			errs = append(errs, fmt.Errorf("%s: %s: unknown area %q", m.Pos, m.Tag, m.Area))
			continue
		}
		if e.n == 0 || m.Address < 0 || m.Address+e.n > 65536 {
			errs = append(errs, fmt.Errorf("%s: %s: address %d (+%d) outside 0-65535", m.Pos, m.Tag, m.Address, e.n))
			continue
		}
		a := mp.areas[m.Area]
		if a == nil {
			a = &area{}
			mp.areas[m.Area] = a
		}
		if need := m.Address + e.n; len(a.owner) < need {
			for len(a.owner) < need {
				a.owner = append(a.owner, -1)
			}
		}
		clash := false
		for k := m.Address; k < m.Address+e.n; k++ {
			if a.owner[k] >= 0 {
				errs = append(errs, fmt.Errorf("%s: %s: %s %d already holds %s", m.Pos, m.Tag, m.Area, k, mp.tags[mp.ents[a.owner[k]].id].Name))
				clash = true
				break
			}
		}
		if clash {
			continue
		}
		for k := m.Address; k < m.Address+e.n; k++ {
			a.owner[k] = int32(len(mp.ents))
		}
		mp.ents = append(mp.ents, e)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrMap, errors.Join(errs...))
	}
	for _, a := range mp.areas {
		a.regs = make([]uint16, len(a.owner))
		a.bits = make([]bool, len(a.owner))
	}
	mp.samples = make([]tag.Sample, len(mp.tags))
	mp.text = make([]string, len(mp.tags))
	for _, e := range mp.ents {
		mp.wire = make([]byte, max(len(mp.wire), 2*e.n))
	}
	return mp, nil
}

// Refresh reads the process image into the register image.
//
// Hot path: runs every scan and allocates nothing (TestRefreshAllocatesNothing).
func (s *Server) Refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.refresh()
}

// refresh reads the map's plant into its register image; the caller holds
// the server's mu, or the map does not serve yet.
func (m *Map) refresh() error {
	if _, err := m.p.Snapshot(m.samples, m.text); err != nil {
		m.fresh = false
		return fmt.Errorf("modbusserver: snapshot: %w", err)
	}
	for i := range m.ents {
		e := &m.ents[i]
		a := m.areas[e.area]
		v := m.samples[e.id].Value
		if e.n == 1 && (e.area == configs.AreaCoil || e.area == configs.AreaDiscrete) {
			a.bits[e.addr] = v != 0
			continue
		}
		w := m.wire[:2*e.n]
		if e.typ == tag.String {
			register.EncodeString(w, e.order, m.text[e.id])
		} else {
			register.Encode(w, e.typ, e.order, (v-e.offset)/e.scale)
		}
		register.FromBytes(a.regs[e.addr:e.addr+e.n], w)
	}
	m.fresh = true
	return nil
}

// Switch serves m from now on, in place of the running map: a request is
// answered wholly from the one or the other. The listener and the client
// connections stay; m's image is read once before it serves.
func (s *Server) Switch(m *Map) {
	if err := m.refresh(); err != nil {
		s.log.Warn("modbusserver: first image of the new map", "err", err)
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	s.log.Info("modbusserver: register map switched", "entries", len(m.ents))
}

// current is the map serving now.
func (s *Server) current() *Map {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Refresh(); err != nil {
		s.log.Warn("modbusserver: first image", "err", err)
	}
	ln, err := s.listen(ctx)
	if err != nil {
		return fmt.Errorf("modbusserver: listen %s: %w", s.cfg.Listen, err)
	}
	served := make(chan struct{})
	go func() { s.serve(ln); close(served) }()
	s.count.Connected.Store(true)
	defer func() { ln.Close(); <-served; s.count.Connected.Store(false) }()
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Refresh(); err != nil {
				s.log.Warn("modbusserver: refresh", "err", err)
			}
		}
	}
}

// span checks that addr..addr+qty lies in mapped addresses of the area.
func (m *Map) span(ar configs.Area, addr, qty uint16) (*area, error) {
	a := m.areas[ar]
	end := int(addr) + int(qty)
	if a == nil || qty == 0 || end > len(a.owner) {
		return nil, modbus.ErrIllegalDataAddress
	}
	for k := int(addr); k < end; k++ {
		if a.owner[k] < 0 {
			return nil, modbus.ErrIllegalDataAddress
		}
	}
	if !m.fresh {
		return nil, modbus.ErrServerDeviceFailure
	}
	return a, nil
}

func (s *Server) unit(u uint8) error {
	if s.cfg.UnitID != 0 && int(u) != s.cfg.UnitID {
		return modbus.ErrGWTargetFailedToRespond
	}
	return nil
}

// read copies addr..addr+qty of an area's bits or registers from the image.
func read[T bool | uint16](s *Server, ar configs.Area, unit uint8, addr, qty uint16, of func(*area) []T) ([]T, error) {
	if err := s.unit(unit); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, err := s.m.span(ar, addr, qty)
	if err != nil {
		return nil, err
	}
	s.count.Published.Add(1)
	return append([]T(nil), of(a)[addr:int(addr)+int(qty)]...), nil
}

func bits(a *area) []bool   { return a.bits }
func regs(a *area) []uint16 { return a.regs }

func (s *Server) readBits(ar configs.Area, unit uint8, addr, qty uint16) ([]bool, error) {
	return read(s, ar, unit, addr, qty, bits)
}

func (s *Server) readRegs(ar configs.Area, unit uint8, addr, qty uint16) ([]uint16, error) {
	return read(s, ar, unit, addr, qty, regs)
}

// writeCoils writes bits from addr on, as who.
func (s *Server) writeCoils(who plant.Principal, unit byte, addr uint16, bs []bool) error {
	return s.write(who, unit, configs.AreaCoil, addr, len(bs), fmt.Sprint(bs), func(_ *entry, off int) (float64, string, error) {
		if bs[off] {
			return 1, "", nil
		}
		return 0, "", nil
	})
}

// writeRegs writes holding registers from addr on, as who.
func (s *Server) writeRegs(who plant.Principal, unit byte, addr uint16, rs []uint16) error {
	return s.write(who, unit, configs.AreaHolding, addr, len(rs), fmt.Sprintf("%04x", rs), func(e *entry, off int) (float64, string, error) {
		return decode(e, rs[off:off+e.n])
	})
}

// write is one write request: who may write, every value checked, then
// all tags applied as one unit. A refusal before the plant is recorded
// with the Refuser; the writes that reach the plant carry who in their
// context for the audit.
func (s *Server) write(who plant.Principal, unit byte, ar configs.Area, addr uint16, qty int, raw string, value func(e *entry, off int) (float64, string, error)) error {
	if err := s.unit(unit); err != nil {
		return err
	}
	m := s.current()
	ctx := plant.WithPrincipal(context.Background(), who)
	refuse := func(name string, err error) error {
		s.count.CountWrite(err)
		plant.Refuse(ctx, s.cfg.Refuser, plant.Refusal{Principal: who, Tag: name, Value: raw, Reason: err.Error()})
		s.log.Warn("modbusserver: write refused", "peer", who.Peer, "user", who.User, "role", who.Role, "area", ar, "address", addr, "err", err)
		return err
	}
	if err := s.mayWrite(who); err != nil {
		return refuse(m.tagAt(ar, addr), err)
	}
	ws, at, err := m.plan(ar, addr, qty, value, origin(who))
	if err != nil {
		return refuse(m.tagAt(ar, at), err)
	}
	return s.apply(ctx, m, ws)
}

// errNoWrite is a client that may not write at all: exception 1 (illegal
// function), as a read-only device answers the write functions; exception
// 2 stays what it means elsewhere, an address that holds no writable tag.
var errNoWrite = fmt.Errorf("modbusserver: client may not write: %w", modbus.ErrIllegalFunction)

// mayWrite says whether who may write: over MBAPS by the role in its
// certificate (WriteRoles), in plaintext by its address (WriteAllow).
func (s *Server) mayWrite(who plant.Principal) error {
	if s.tls != nil {
		switch {
		case who.Role == "":
			return fmt.Errorf("%w: certificate %q carries no role (extension %s); roles that write: %v (write_roles)", errNoWrite, who.User, roleOID, s.cfg.WriteRoles)
		case !slices.Contains(s.cfg.WriteRoles, who.Role):
			return fmt.Errorf("%w: role %q of %q is not one of write_roles %v", errNoWrite, who.Role, who.User, s.cfg.WriteRoles)
		}
		return nil
	}
	ip := netip.Addr{}
	if ap, err := netip.ParseAddrPort(who.Peer); err == nil {
		ip = ap.Addr().Unmap()
	}
	for _, p := range s.cfg.WriteAllow {
		if p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("%w: plaintext client %s is not in write_allow %v", errNoWrite, ip, s.cfg.WriteAllow)
}

// tagAt names the tag at addr of an area ("" when none).
func (m *Map) tagAt(ar configs.Area, addr uint16) string {
	if a := m.areas[ar]; a != nil && int(addr) < len(a.owner) && a.owner[addr] >= 0 {
		return m.tags[m.ents[a.owner[addr]].id].Name
	}
	return ""
}

// decode reads the registers a client wrote to entry e: the text of a
// string, or the engineering value (scale and offset applied) of anything
// else. Registers that hold no value of the type (a bool other than 0 or 1,
// a NaN or infinite float) are the wrong type.
func decode(e *entry, r []uint16) (float64, string, error) {
	w := make([]byte, 2*len(r))
	register.ToBytes(w, r)
	if e.typ == tag.String {
		return 0, register.DecodeString(w, e.order, len(w), ""), nil
	}
	raw, err := register.Decode(w, e.typ, e.order)
	if err != nil {
		return 0, "", fmt.Errorf("modbusserver: registers %04x as %s %s: %w: %w", r, e.typ, e.order, err, wire.ErrWrongType)
	}
	return raw*e.scale + e.offset, "", nil
}

// origin is the origin of a client's writes: its address and, over MBAPS,
// the role its certificate carries.
func origin(who plant.Principal) wire.Origin {
	if who.Role != "" {
		return wire.NewOrigin("modbus:" + who.Peer + " (" + who.Role + ")")
	}
	return wire.NewOrigin("modbus:" + who.Peer)
}

// plan turns a write request into validated tag writes. Every address must
// be mapped, every value whole (no partial multi-register values), every tag
// writable and every value in range — or nothing is written. Errors wrap
// the exception they answer; at is the address refused.
func (m *Map) plan(ar configs.Area, addr uint16, qty int, value func(e *entry, off int) (float64, string, error), who wire.Origin) (ws []wire.Command, at uint16, err error) {
	a := m.areas[ar]
	end := int(addr) + qty
	if a == nil || qty == 0 || end > len(a.owner) {
		return nil, addr, fmt.Errorf("modbusserver: %s %d-%d is not mapped: %w", ar, addr, end-1, modbus.ErrIllegalDataAddress)
	}
	for k := int(addr); k < end; {
		ei := a.owner[k]
		if ei < 0 {
			return nil, uint16(k), fmt.Errorf("modbusserver: %s %d is not mapped: %w", ar, k, modbus.ErrIllegalDataAddress)
		}
		e := &m.ents[ei]
		name := m.tags[e.id].Name
		if e.addr != k || k+e.n > end {
			return nil, uint16(k), fmt.Errorf("modbusserver: %s %d-%d writes part of %s (%s %d-%d): %w", ar, addr, end-1, name, ar, e.addr, e.addr+e.n-1, modbus.ErrIllegalDataAddress)
		}
		if !m.tags[e.id].Writable {
			return nil, uint16(k), fmt.Errorf("modbusserver: %s is read-only: %w", name, modbus.ErrIllegalDataAddress)
		}
		v, text, err := value(e, k-int(addr))
		if err != nil {
			return nil, uint16(k), fmt.Errorf("%w: %w", err, modbus.ErrIllegalDataValue)
		}
		if in := m.tags[e.id]; in.Type != tag.String && in.Type != tag.Float32 && in.Type != tag.Float64 && e.scale != 1 {
			v = math.Round(v*1e9) / 1e9 // scaled integers: undo float noise
		}
		w := wire.Command{Kind: wire.WriteTag, Tag: e.id, Value: wire.ValueOf(&m.tags[e.id], v, text), Origin: who}
		if err := plant.Check(m.tags, &w); err != nil {
			return nil, uint16(k), fmt.Errorf("%w: %w", err, exception(err))
		}
		ws = append(ws, w)
		k += e.n
	}
	return ws, 0, nil
}

// apply sends the writes to the executive as one unit and waits for the
// answer: all applied in one cycle, or none (plant.Batcher). A plant that
// cannot batch gets them one by one.
func (s *Server) apply(ctx context.Context, m *Map, ws []wire.Command) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	var err error
	if b, ok := m.p.(plant.Batcher); ok && len(ws) > 1 {
		_, err = b.WriteAll(ctx, ws)
		for range ws {
			s.count.CountWrite(err)
		}
	} else {
		for _, w := range ws {
			_, err = m.p.Write(ctx, w)
			s.count.CountWrite(err)
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		s.log.Warn("modbusserver: write failed", "tags", len(ws), "first", m.tags[ws[0].Tag].Name, "who", ws[0].Origin.String(), "err", err)
		return exception(err)
	}
	// a read right after the answer sees the written value
	if err := s.Refresh(); err != nil {
		s.log.Warn("modbusserver: refresh", "err", err)
	}
	return nil
}

// exception maps a write error to its Modbus exception.
func exception(err error) error {
	switch {
	case errors.Is(err, wire.ErrUnknownTag), errors.Is(err, wire.ErrReadOnly):
		return modbus.ErrIllegalDataAddress
	case errors.Is(err, wire.ErrOutOfRange), errors.Is(err, wire.ErrWrongType):
		return modbus.ErrIllegalDataValue
	case errors.Is(err, wire.ErrBusy), errors.Is(err, context.DeadlineExceeded):
		return modbus.ErrServerDeviceBusy
	}
	return modbus.ErrServerDeviceFailure
}
