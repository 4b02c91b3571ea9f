package configs

import (
	"strings"
	"time"

	"github.com/mkrt/mkrt/boards"
	"github.com/mkrt/mkrt/shm/tag"
)

// The documented defaults.
const (
	DefaultMemory       = Size(256 << 20)
	DefaultSharedMemory = Size(4 << 20)
	DefaultUnitID       = 1
	DefaultTimeout      = Duration(500 * time.Millisecond)
	DefaultPoll         = Duration(100 * time.Millisecond)
	DefaultRetries      = 1
	DefaultMaxGap       = 8
	DefaultBaudRate     = 19200
	DefaultPriority     = 80
	DefaultCommands     = 16
	DefaultOverruns     = 3
	DefaultHeartbeat    = 10
	DefaultBroker       = "embedded"
	DefaultBrokerListen = "127.0.0.1:1883"
	DefaultQoS          = 1
	DefaultKeepAlive    = Duration(30 * time.Second)
	DefaultStoreMax     = Size(64 << 20)
	DefaultGroup        = "mkrt"
	DefaultJSONPrefix   = "mkrt"
	DefaultMaxClients   = 16
	DefaultIdleTimeout  = Duration(60 * time.Second)
	DefaultHighest      = Duration(100 * time.Millisecond)
	DefaultDigits       = 3
	DefaultInterval     = Duration(10 * time.Second)
	DefaultStringLength = 32
)

// Defaults fills every value the config leaves out with its documented
// default. It is idempotent; Load calls it before validating.
func (c *Config) Defaults() {
	p := &c.Partition
	setDefault(&p.Board, boards.Default)
	setDefault(&p.Backend, BackendProcess)
	setDefault(&p.Memory, DefaultMemory)
	setDefault(&p.SharedMemory, DefaultSharedMemory)
	if len(p.CPUs) == 0 {
		if b, err := c.Board(); err == nil {
			p.CPUs = append(CPUList(nil), b.PartitionCPUs...)
		}
	}
	firstNIC := ""
	if len(p.NICs) > 0 {
		firstNIC = p.NICs[0].Interface
	}
	for i := range c.Devices {
		c.Devices[i].defaults(c, firstNIC)
	}
	for i := range c.Tags {
		t := &c.Tags[i]
		setDefault(&t.Type, tag.Float64)
		if t.Type == tag.String {
			setDefault(&t.Length, DefaultStringLength)
		}
	}
	for i := range c.Tasks {
		t := &c.Tasks[i]
		setDefaultUnwritten(c, &t.Priority, DefaultPriority)
		setDefault(&t.Overrun, OverrunSkip)
		setDefault(&t.Commands, DefaultCommands)
		if t.CPU == nil && len(p.CPUs) > 0 {
			cpu := p.CPUs[0]
			t.CPU = &cpu
		}
	}
	setDefaultUnwritten(c, &c.Watchdog.Overruns, DefaultOverruns)
	setDefaultUnwritten(c, &c.Watchdog.Heartbeat, DefaultHeartbeat)
	c.Bridge.defaults(c)
	l := &c.Latency
	setDefault(&l.Highest, DefaultHighest)
	setDefaultUnwritten(c, &l.Digits, DefaultDigits)
	setDefault(&l.Interval, DefaultInterval)
}

func (d *Device) defaults(c *Config, firstNIC string) {
	setDefaultUnwritten(c, &d.UnitID, DefaultUnitID)
	setDefault(&d.Timeout, DefaultTimeout)
	setDefault(&d.Poll, DefaultPoll)
	setDefaultUnwritten(c, &d.Retries, DefaultRetries)
	setDefaultUnwritten(c, &d.MaxGap, DefaultMaxGap)
	if d.Driver != DriverModbusRTUOverTCP && d.Driver != DriverModbusTCP {
		s := &d.Serial
		setDefault(&s.BaudRate, DefaultBaudRate)
		setDefault(&s.DataBits, 8)
		setDefault(&s.Parity, "E")
		setDefault(&s.StopBits, 1)
	}
	if d.Driver != DriverModbusRTU {
		setDefault(&d.Interface, firstNIC)
	}
	d.Watchdog.Defaults()
	for i := range d.Tags {
		t := &d.Tags[i]
		setDefault(&t.Type, t.DefaultType())
		setDefault(&t.Access, t.DefaultAccess())
		if t.Type.Registers(0) > 1 {
			setDefault(&t.Order, ABCD)
		}
		if t.Scale == nil && t.Type.Numeric() {
			t.Scale = ptrTo(1.0)
		}
	}
}

// DefaultType is the tag's type when none is written: bool for coils,
// discrete inputs and register bits, uint16 for registers.
func (t *IOTag) DefaultType() tag.DataType {
	if t.Area == AreaCoil || t.Area == AreaDiscrete || t.Bit != nil {
		return tag.Bool
	}
	return tag.Uint16
}

// DefaultAccess is the tag's access when none is written: read for
// discrete inputs and input registers, read_write for coils and holding
// registers.
func (t *IOTag) DefaultAccess() tag.Access {
	if t.Area == AreaCoil || t.Area == AreaHolding {
		return tag.ReadWrite
	}
	return tag.Read
}

func (b *Bridge) defaults(c *Config) {
	m := &b.MQTT
	setDefault(&m.Broker, DefaultBroker)
	if m.Broker == DefaultBroker {
		setDefault(&m.Listen, DefaultBrokerListen)
	}
	setDefaultUnwritten(c, &m.QoS, DefaultQoS)
	setDefault(&m.KeepAlive, DefaultKeepAlive)
	setDefault(&m.Store.Max, DefaultStoreMax)
	s := &b.Sparkplug
	setDefault(&s.Enabled, ptrTo(true))
	setDefault(&s.Group, c.Metadata.Site)
	setDefault(&s.Group, DefaultGroup)
	setDefault(&s.Node, c.Metadata.Name)
	node := s.Node
	if node == "" {
		node = DefaultGroup
	}
	setDefault(&m.ClientID, "mkrt-"+node)
	setDefault(&b.JSON.Enabled, ptrTo(true))
	setDefault(&b.JSON.Prefix, DefaultJSONPrefix)
	ms := &b.Modbus
	setDefault(&ms.MaxClients, DefaultMaxClients)
	setDefault(&ms.IdleTimeout, DefaultIdleTimeout)
	setDefaultUnwritten(c, &ms.UnitID, DefaultUnitID)
	tags := c.tagIndex()
	for i := range ms.Map {
		e := &ms.Map[i]
		if t, ok := tags[e.Tag]; ok {
			setDefault(&e.Type, t.Type)
		}
		if e.Type.Registers(0) > 1 {
			setDefault(&e.Order, ABCD)
		}
		if e.Scale == nil && e.Type.Numeric() {
			e.Scale = ptrTo(1.0)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// setDefault sets *p to v when *p is the zero value.
func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// written reports whether the field ptr points to was written in the
// config file: a 0 written explicitly (qos: 0, retries: 0, unit_id: 0)
// means 0, not "the default".
func (c *Config) written(ptr any) bool {
	if c.where == nil {
		return false
	}
	_, ok := c.where.fields[ptr]
	return ok
}

// setDefaultUnwritten is setDefault for fields where 0 is a meaningful
// value when written in the file.
func setDefaultUnwritten[T comparable](c *Config, p *T, v T) {
	if !c.written(p) {
		setDefault(p, v)
	}
}

// Board returns the partition's board: a built-in board by name, or a
// board file when the name is a path (relative to the config file).
func (c *Config) Board() (boards.Board, error) {
	name := c.Partition.Board
	if name == "" {
		name = boards.Default
	}
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return boards.Load(c.ResolvePath(name))
	}
	return boards.Lookup(name)
}
