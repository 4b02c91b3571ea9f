package configs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mkrt/mkrt/boards"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
)

// Check is a rule of a config kept outside this package: the function
// blocks' types, ports, parameters and units are the rules of the block
// catalogue (blocks.Validate in rtkernel/blocks, which this package may not
// import). It returns its problems as Errors, or nil.
type Check func(*Config) error

// Validate checks every rule of the schema, and the checks, and returns
// every problem as Errors (sorted by position), or nil. Call it after
// Defaults (Load does both); on a config without defaults, empty values
// count as defaults.
//
// This package checks a block's shape: its name, that its inputs read
// tags and blocks that exist (of its own task), that its outputs write
// tags that exist and may be written, one writer per tag. What a block of
// a type takes is the catalogue's to check.
func (c *Config) Validate(checks ...Check) error {
	var errs Errors
	c.validate(&errs, checks, false)
	return errs.Err()
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	pciRE  = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)
)

// checker carries what the rules share.
type checker struct {
	c      *Config
	errs   *Errors
	board  boards.Board
	known  bool // board is a known board
	cpus   CPUList
	tags   map[string]TagInfo
	blocks map[string]string // block name -> task name
	// noFiles: the general side's files (certificates, password files)
	// are not looked for (LoadInPartition).
	noFiles bool
}

func (k *checker) add(pos Pos, format string, args ...any) { k.errs.Add(pos, format, args...) }

// at is the position of a field, falling back to its struct's position.
func (k *checker) at(ptr any, fallback Pos) Pos { return k.c.FieldPos(ptr, fallback) }

func (c *Config) validate(errs *Errors, checks []Check, inPartition bool) {
	k := &checker{c: c, errs: errs, tags: c.tagIndex(), blocks: map[string]string{}, noFiles: inPartition}
	k.generic(reflect.ValueOf(c).Elem(), c.Pos, "config")
	k.name(&c.Metadata.Name, c.Metadata.Pos, "metadata.name", MaxPartitionName, whyPartitionName)
	k.partition()
	k.devices()
	k.internalTags()
	k.tasks()
	k.watchdog()
	k.bridge()
	k.latency()
	for _, check := range checks {
		errs.AddErr(check(c))
	}
}

// generic applies the struct tags: required values must be set, enum
// values must be one of the listed ones.
func (k *checker) generic(v reflect.Value, pos Pos, where string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			k.generic(v.Elem(), pos, where)
		}
		return
	case reflect.String: // an element of a list of strings
		if v.CanAddr() {
			k.bounded(v.String(), k.at(v.Addr().Interface(), pos), where, MaxString, whyString)
		}
		return
	case reflect.Slice:
		if v.Type() == cpuListType {
			return
		}
		for i := 0; i < v.Len(); i++ {
			k.generic(v.Index(i), pos, fmt.Sprintf("%s[%d]", where, i))
		}
		return
	case reflect.Struct:
	default:
		return
	}
	if p := v.FieldByName("Pos"); p.IsValid() && p.Type() == posType {
		if sp := p.Interface().(Pos); sp.Line > 0 || pos.Line == 0 {
			pos = sp
		}
	}
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		fp := k.at(fv.Addr().Interface(), pos)
		if enum := v.Type().Field(f.index).Tag.Get("enum"); enum != "" && fv.Kind() == reflect.String && fv.String() != "" {
			allowed := strings.Split(enum, ",")
			if !slices.Contains(allowed, fv.String()) {
				k.add(fp, "%s: unknown %s %q%s (one of %s)", where, f.name, fv.String(), DidYouMean(fv.String(), allowed), strings.Join(allowed, ", "))
			}
		}
		written := k.c.written(fv.Addr().Interface())
		// Names have limits of their own; a default derived from a name
		// (client_id, sparkplug.node) is reported at the name.
		if fv.Kind() == reflect.String && f.name != "name" && (written || k.c.where == nil) {
			limit, why := stringLimit(f.name)
			k.bounded(fv.String(), fp, where+": "+f.name, limit, why)
		}
		if f.required && fv.Kind() != reflect.Int && fv.IsZero() && (!written || fv.Kind() == reflect.String) {
			if written {
				k.add(fp, "%s: %s is empty; write %s", where, f.name, f.doc)
			} else {
				k.add(pos, "%s: missing %s: %s", where, f.name, f.doc)
			}
		}
		switch fv.Kind() {
		case reflect.Slice:
			k.generic(fv, fp, f.name) // a list's elements fall back to the list's position
		case reflect.Struct, reflect.Pointer:
			k.generic(fv, pos, f.name)
		}
	}
}

// DidYouMean is ` (did you mean "x"?)` when x, one of candidates, is
// close enough to s to be what was meant, or "". Messages about a name
// written wrong end with it.
func DidYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}

// name checks a name written by the engineer: its characters, and its
// length against limit, the tightest place it is used (why says which).
func (k *checker) name(p *string, fallback Pos, what string, limit int, why string) {
	if *p == "" || !k.bounded(*p, k.at(p, fallback), what, limit, why) || nameRE.MatchString(*p) {
		return
	}
	fix := "use letters, digits, '_' and '-'"
	if strings.Contains(*p, ".") {
		fix += " (a dot separates block.port, so names cannot contain one)"
	}
	k.add(k.at(p, fallback), "%s %s is not a valid name: %s", what, short(*p), fix)
}

func (k *checker) partition() {
	p := &k.c.Partition
	board := p.Board
	if board == "" {
		board = boards.Default
	}
	b, err := k.c.Board()
	switch {
	case errors.Is(err, boards.ErrUnknown):
		k.add(k.at(&p.Board, p.Pos), "unknown board %q%s (known boards: %s, or the path of a board file)", board, DidYouMean(board, boards.Names()), strings.Join(boards.Names(), ", "))
	case err != nil:
		k.add(k.at(&p.Board, p.Pos), "board %s: %v", board, err)
	default:
		k.board, k.known = b, true
	}
	k.cpus = p.CPUs
	if len(k.cpus) == 0 && k.known {
		k.cpus = b.PartitionCPUs
	}
	cpuPos := k.at(&p.CPUs, p.Pos)
	seen := map[int]bool{}
	for _, cpu := range p.CPUs {
		if seen[cpu] {
			k.add(cpuPos, "partition.cpus: CPU %d is listed twice; list each CPU once", cpu)
		}
		seen[cpu] = true
		if k.known && cpu >= b.CPUs {
			k.add(cpuPos, "partition.cpus: CPU %d is outside board %s, which has CPUs 0-%d; pick CPUs below %d", cpu, b.Name, b.CPUs-1, b.CPUs)
		}
	}
	if k.known && len(p.CPUs) > 0 && len(p.CPUs) >= b.CPUs {
		k.add(cpuPos, "partition.cpus: the partition takes all %d CPUs of board %s; leave at least CPU 0 to the general kernel", b.CPUs, b.Name)
	}
	k.standbyCPUs(p, b)
	k.sharedMemory(p)
	names := map[string]Pos{}
	for i := range p.NICs {
		n := &p.NICs[i]
		switch {
		case n.Interface == "" && n.PCI == "":
			k.add(n.Pos, "nic: name the NIC by interface (e.g. eth1) or by pci (e.g. 0000:03:00.0)")
		case n.Interface != "" && n.PCI != "":
			k.add(k.at(&n.PCI, n.Pos), "nic: give either interface or pci, not both")
		case n.PCI != "" && !pciRE.MatchString(n.PCI):
			k.add(k.at(&n.PCI, n.Pos), "nic: pci %s is not a PCI address; write domain:bus:device.function, e.g. 0000:03:00.0", short(n.PCI))
		}
		k.ifName(&n.Interface, n.Pos, "nic: interface")
		id := n.Interface + n.PCI
		if first, dup := names[id]; dup && id != "" {
			k.add(n.Pos, "nic %s is listed twice (first at line %d); list each NIC once", id, first.Line)
		}
		names[id] = n.Pos
		if n.Address != "" {
			if _, err := netip.ParsePrefix(n.Address); err != nil {
				k.add(k.at(&n.Address, n.Pos), "nic: address %q is not in CIDR form; write e.g. 10.10.0.2/24", n.Address)
			}
		}
		if n.HostAddress != "" {
			if _, err := netip.ParsePrefix(n.HostAddress); err != nil {
				k.add(k.at(&n.HostAddress, n.Pos), "nic: host_address %q is not in CIDR form; write e.g. 10.213.0.1/30", n.HostAddress)
			}
		}
		k.nicBridge(n)
		if n.Gateway != "" {
			if _, err := netip.ParseAddr(n.Gateway); err != nil {
				k.add(k.at(&n.Gateway, n.Pos), "nic: gateway %q is not an IP address; write e.g. 10.10.0.1", n.Gateway)
			}
		}
	}
}

// nicBridge checks a NIC's bridge and standby_address: a tap (named by
// interface) joins an existing host bridge instead of getting a host
// address, and a hand-over's new guest needs an address of its own beside
// the running one on that bridge.
func (k *checker) nicBridge(n *NIC) {
	if n.Bridge != "" {
		pos := k.at(&n.Bridge, n.Pos)
		switch {
		case n.PCI != "":
			k.add(pos, "nic: bridge is for a tap (a NIC named by interface), not for a pci passthrough NIC; remove bridge or name the tap by interface")
		case n.HostAddress != "":
			k.add(pos, "nic: give either host_address (a tap with a host address) or bridge (a tap in a host bridge), not both")
		}
		k.ifName(&n.Bridge, n.Pos, "nic: bridge")
	}
	if n.StandbyAddress == "" {
		return
	}
	pos := k.at(&n.StandbyAddress, n.Pos)
	sp, err := netip.ParsePrefix(n.StandbyAddress)
	switch {
	case err != nil:
		k.add(pos, "nic: standby_address %q is not in CIDR form; write e.g. 10.213.0.3/24", n.StandbyAddress)
		return
	case n.Bridge == "":
		k.add(pos, "nic: standby_address is the address of a hand-over's new guest beside the running one on a bridge; it needs bridge")
		return
	case n.Address == "":
		k.add(pos, "nic: standby_address needs address, the guest's usual address in the same subnet")
		return
	}
	ap, err := netip.ParsePrefix(n.Address)
	switch {
	case err != nil: // reported with address
	case sp.Addr() == ap.Addr():
		k.add(pos, "nic: standby_address %s is address itself; give the new guest another address, so the two guests are not one IP address on the bridge", sp.Addr())
	case sp.Bits() != ap.Bits() || !ap.Masked().Contains(sp.Addr()):
		k.add(pos, "nic: standby_address %s is not in address's subnet %s; the new guest must reach the same field devices", n.StandbyAddress, ap.Masked())
	}
}

// TagInfo is what the rules know of one tag, device or internal: its
// entry in the tag directory and where it is defined.
type TagInfo struct {
	tag.Info
	Pos Pos
}

// TagsByName returns every tag of the config by name (the first one when
// a name is used twice), with defaults applied to type and access.
func (c *Config) TagsByName() map[string]TagInfo { return c.tagIndex() }

func (c *Config) tagIndex() map[string]TagInfo {
	infos, pos := c.tagDirectory()
	m := make(map[string]TagInfo, len(infos))
	for i, in := range infos {
		if _, dup := m[in.Name]; !dup && in.Name != "" {
			m[in.Name] = TagInfo{Info: in, Pos: pos[i]}
		}
	}
	return m
}

// uniqueTag reports a tag name used before.
func (k *checker) uniqueTag(seen map[string]Pos, name *string, pos Pos) {
	k.name(name, pos, "tag name", MaxTagName, whyTagName)
	if *name == "" {
		return
	}
	if first, dup := seen[*name]; dup {
		k.add(k.at(name, pos), "tag %q is defined twice (first at %s); tag names are unique across devices and internal tags", *name, first)
		return
	}
	seen[*name] = k.at(name, pos)
}

func (k *checker) devices() {
	c := k.c
	devs := map[string]Pos{}
	tagNames := map[string]Pos{}
	nics := map[string]bool{}
	for _, n := range c.Partition.NICs {
		nics[n.Interface] = true
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		k.name(&d.Name, d.Pos, "device name", MaxDeviceName, whyTagName)
		if first, dup := devs[d.Name]; dup && d.Name != "" {
			k.add(k.at(&d.Name, d.Pos), "device %q is defined twice (first at %s); give each device its own name", d.Name, first)
		}
		devs[d.Name] = k.at(&d.Name, d.Pos)
		k.device(d, nics)
		spans := make([]span, 0, len(d.Tags))
		for j := range d.Tags {
			t := &d.Tags[j]
			k.uniqueTag(tagNames, &t.Name, t.Pos)
			k.ioTag(d, t)
			typ := t.Type
			setDefault(&typ, t.DefaultType())
			s := span{name: t.Name, area: t.Area, start: t.Address, n: max(typ.Registers(t.Length), 1), bit: -1, pos: k.at(&t.Address, t.Pos)}
			if t.Area == AreaCoil || t.Area == AreaDiscrete {
				s.n = 1
			}
			if t.Bit != nil {
				s.n, s.bit = 1, *t.Bit
			}
			spans = append(spans, s)
		}
		k.deviceWatchdog(d, spans)
		k.overlaps(spans, "tag", "on device "+d.Name)
	}
	for i := range c.Tags {
		k.uniqueTag(tagNames, &c.Tags[i].Name, c.Tags[i].Pos)
	}
}

func (k *checker) device(d *Device, nics map[string]bool) {
	switch d.Driver {
	case DriverModbusTCP, DriverModbusRTUOverTCP:
		if d.Address != "" {
			k.hostPort(&d.Address, d.Pos, "device "+d.Name+": address", false)
		}
	case DriverModbusRTU:
		if d.Address != "" && !strings.HasPrefix(d.Address, "/") {
			k.add(k.at(&d.Address, d.Pos), "device %s: address %q is not a serial device; write its path, e.g. /dev/ttyUSB0", d.Name, d.Address)
		}
		s := &d.Serial
		if s.BaudRate < 0 {
			k.add(k.at(&s.BaudRate, s.Pos), "device %s: baud_rate %d is negative; write e.g. 19200", d.Name, s.BaudRate)
		}
		if s.DataBits != 0 && (s.DataBits < 5 || s.DataBits > 8) {
			k.add(k.at(&s.DataBits, s.Pos), "device %s: data_bits %d is not 5-8; Modbus RTU uses 8", d.Name, s.DataBits)
		}
		if s.StopBits != 0 && s.StopBits != 1 && s.StopBits != 2 {
			k.add(k.at(&s.StopBits, s.Pos), "device %s: stop_bits %d is not 1 or 2", d.Name, s.StopBits)
		}
	}
	if d.UnitID < 0 || d.UnitID > 247 {
		k.add(k.at(&d.UnitID, d.Pos), "device %s: unit_id %d is outside 0-247; write the unit id the device answers to", d.Name, d.UnitID)
	}
	for _, n := range []struct {
		v    *int
		name string
	}{{&d.Retries, "retries"}, {&d.MaxGap, "max_gap"}} {
		if *n.v < 0 {
			k.add(k.at(n.v, d.Pos), "device %s: %s %d is negative; write 0 or more", d.Name, n.name, *n.v)
		}
	}
	if d.MaxGap > 120 {
		k.add(k.at(&d.MaxGap, d.Pos), "device %s: max_gap %d is wider than one Modbus read (125 registers); write at most 120", d.Name, d.MaxGap)
	}
	if d.Timeout < 0 || (d.Timeout == 0 && k.c.written(&d.Timeout)) {
		k.add(k.at(&d.Timeout, d.Pos), "device %s: timeout must be positive; write e.g. 500ms", d.Name)
	}
	if d.Poll < 0 || (d.Poll == 0 && k.c.written(&d.Poll)) {
		k.add(k.at(&d.Poll, d.Pos), "device %s: poll must be positive; write e.g. 100ms", d.Name)
	}
	if d.Interface != "" && !nics[d.Interface] {
		k.add(k.at(&d.Interface, d.Pos), "device %s: interface %q is not one of the partition's nics; add it under partition.nics or remove it", d.Name, d.Interface)
	}
}

// deviceWatchdog checks a device's own comm-loss watchdog against the
// device's tags (the address spans of its tags).
func (k *checker) deviceWatchdog(d *Device, tags []span) {
	w := &d.Watchdog
	present := k.c.written(w) || w.Timeout != 0 || w.TimeoutRegister != nil || w.TimeoutUnit != 0 ||
		w.KeepAliveRegister != nil || w.KeepAliveEvery != 0 || w.KeepAliveValue != ""
	if !present {
		return
	}
	where := "device " + d.Name + ": watchdog"
	pos := w.Pos
	if pos.Line == 0 {
		pos = k.at(w, d.Pos)
	}
	if w.Timeout <= 0 {
		k.add(k.at(&w.Timeout, pos), "%s: missing timeout; write the device's comm-loss timeout, e.g. timeout: 1s", where)
		return
	}
	regs := []struct {
		r    *WatchdogRegister
		name string
	}{{w.TimeoutRegister, "timeout_register"}, {w.KeepAliveRegister, "keepalive_register"}}
	var own []span
	for _, x := range regs {
		if x.r == nil {
			continue
		}
		area, ap := x.r.RegisterArea(), k.at(&x.r.Address, x.r.Pos)
		switch {
		case area == AreaInput || area == AreaDiscrete:
			k.add(k.at(&x.r.Area, x.r.Pos), "%s.%s: %s is read-only on Modbus and the watchdog's registers are written; write area: holding (or coil for a keep-alive) as the device's manual gives it", where, x.name, areaName(area))
			continue
		case area == AreaCoil && x.r == w.TimeoutRegister:
			k.add(k.at(&x.r.Area, x.r.Pos), "%s.timeout_register: a coil holds one bit, not a timeout; write the holding register the device's manual gives", where)
			continue
		case x.r.Address < 0 || x.r.Address > 65535:
			k.add(ap, "%s.%s: address %d is outside 0-65535", where, x.name, x.r.Address)
			continue
		}
		s := span{name: "watchdog." + x.name, area: area, start: x.r.Address, n: 1, bit: -1, pos: ap}
		for _, t := range tags {
			if t.area == s.area && t.start < s.start+s.n && s.start < t.start+t.n {
				k.add(ap, "%s.%s (%s) overlaps tag %s (%s); the watchdog's registers are the device's own: correct the address from the device's manual or move the tag", where, x.name, s.describe(), t.name, t.describe())
			}
		}
		for _, o := range own {
			if o.area == s.area && o.start == s.start {
				k.add(ap, "%s: timeout_register and keepalive_register are both %s; they are two registers of the device", where, s.describe())
			}
		}
		own = append(own, s)
	}
	if w.TimeoutRegister != nil {
		if _, err := w.Steps(); err != nil {
			at := k.at(&w.Timeout, pos)
			if k.c.written(&w.TimeoutUnit) {
				at = k.at(&w.TimeoutUnit, pos)
			}
			k.add(at, "%s: %v", where, err)
		}
	} else if w.TimeoutUnit != 0 {
		k.add(k.at(&w.TimeoutUnit, pos), "%s: timeout_unit is the step of timeout_register, which is not given; add timeout_register or remove timeout_unit", where)
	}
	if w.KeepAliveRegister == nil {
		if w.KeepAliveEvery != 0 {
			k.add(k.at(&w.KeepAliveEvery, pos), "%s: keepalive_every needs keepalive_register, the register the keep-alive is written to", where)
		}
		if w.KeepAliveValue != "" {
			k.add(k.at(&w.KeepAliveValue, pos), "%s: keepalive_value needs keepalive_register, the register the keep-alive is written to", where)
		}
		poll := d.Poll
		setDefault(&poll, DefaultPoll)
		if poll >= w.Timeout {
			k.add(k.at(&w.Timeout, pos), "%s: without keepalive_register the polls keep the watchdog fed, but poll %s is not shorter than timeout %s; poll faster, raise the timeout or give keepalive_register", where, poll, w.Timeout)
		}
		return
	}
	if every := w.KeepAlivePeriod(); every >= w.Timeout.D() || every <= 0 {
		k.add(k.at(&w.KeepAliveEvery, pos), "%s: keepalive_every %s is not shorter than timeout %s, so the watchdog would expire between keep-alives; write a third of the timeout or less, e.g. %s", where, every, w.Timeout, (&DeviceWatchdog{Timeout: w.Timeout}).KeepAlivePeriod())
	}
	if w.KeepAliveRegister.RegisterArea() == AreaCoil && w.KeepAliveValue == KeepAliveIncrement {
		k.add(k.at(&w.KeepAliveValue, pos), "%s: a coil holds one bit, so its keep-alive toggles; write keepalive_value: toggle or remove it", where)
	}
}

func (k *checker) ioTag(d *Device, t *IOTag) {
	where := fmt.Sprintf("tag %s", t.Name)
	typ := t.Type
	setDefault(&typ, t.DefaultType())
	k.dataType(&t.Type, t.Pos, where)
	bitOK := t.Area == AreaHolding || t.Area == AreaInput
	if (t.Area == AreaCoil || t.Area == AreaDiscrete) && typ != tag.Bool {
		k.add(k.at(&t.Type, t.Pos), "%s: a %s holds one bit, so its type must be bool (remove type or write bool)", where, t.Area)
	}
	if t.Bit != nil {
		bp := k.at(&t.Bit, t.Pos)
		switch {
		case !bitOK:
			k.add(bp, "%s: bit applies to holding and input registers only; remove it", where)
		case *t.Bit < 0 || *t.Bit > 15:
			k.add(bp, "%s: bit %d is outside 0-15; a register has 16 bits", where, *t.Bit)
		case typ != tag.Bool:
			k.add(k.at(&t.Type, t.Pos), "%s: a register bit is a bool; remove type or write bool", where)
		}
	}
	if typ == tag.String && t.Length <= 0 {
		k.add(k.at(&t.Length, t.Pos), "%s: a string tag needs length (its size in bytes), e.g. length: 16", where)
	}
	if typ != tag.String && t.Length != 0 {
		k.add(k.at(&t.Length, t.Pos), "%s: length applies to string tags only; remove it", where)
	}
	if (t.Area == AreaDiscrete || t.Area == AreaInput) && t.Access.Writable() {
		k.add(k.at(&t.Access, t.Pos), "%s: %s is read-only on Modbus; write access: read or move the tag to a %s", where, areaName(t.Area), map[Area]Area{AreaDiscrete: AreaCoil, AreaInput: AreaHolding}[t.Area])
	}
	end := t.Address + max(typ.Registers(t.Length), 1)
	if t.Address < 0 || end > 65536 {
		k.add(k.at(&t.Address, t.Pos), "%s: address %d is outside 0-65535 (the value takes %d registers)", where, t.Address, end-t.Address)
	}
	if t.Scale != nil && *t.Scale == 0 {
		k.add(k.at(&t.Scale, t.Pos), "%s: scale 0 would make every value 0; write a non-zero scale or remove it", where)
	}
	k.limits(t.Min, t.Max, &t.Min, t.Pos, where)
	if t.Deadband < 0 {
		k.add(k.at(&t.Deadband, t.Pos), "%s: deadband %g is negative; write 0 or more", where, t.Deadband)
	}
}

func areaName(a Area) string {
	if a == AreaInput {
		return "an input register"
	}
	return "a discrete input"
}

func (k *checker) dataType(t *tag.DataType, pos Pos, where string) {
	if *t == "" || t.Valid() {
		return
	}
	names := make([]string, len(tag.DataTypes))
	for i, d := range tag.DataTypes {
		names[i] = string(d)
	}
	k.add(k.at(t, pos), "%s: unknown type %q%s (one of %s)", where, *t, DidYouMean(string(*t), names), strings.Join(names, ", "))
}

func (k *checker) limits(lo, hi *float64, ptr any, pos Pos, where string) {
	if lo != nil && hi != nil && *lo > *hi {
		k.add(k.at(ptr, pos), "%s: min %g is above max %g; swap them", where, *lo, *hi)
	}
}

func (k *checker) internalTags() {
	for i := range k.c.Tags {
		t := &k.c.Tags[i]
		where := fmt.Sprintf("tag %s", t.Name)
		k.dataType(&t.Type, t.Pos, where)
		if t.Length < 0 {
			k.add(k.at(&t.Length, t.Pos), "%s: length %d is negative", where, t.Length)
		}
		if t.Type != tag.String && t.Type != "" && t.Length != 0 {
			k.add(k.at(&t.Length, t.Pos), "%s: length applies to string tags only; remove it", where)
		}
		k.limits(t.Min, t.Max, &t.Min, t.Pos, where)
		if t.Deadband < 0 {
			k.add(k.at(&t.Deadband, t.Pos), "%s: deadband %g is negative; write 0 or more", where, t.Deadband)
		}
		if t.Initial.Set {
			if info, ok := k.tags[t.Name]; ok && info.Pos == t.Pos {
				k.value(t.Initial, info, where+": initial value")
			}
		}
	}
}

// value checks that v suits the tag the way the executive checks a write
// (wire.CheckValue): it parses for the type and fits the type's range, the
// tag's min and max and a string's length.
func (k *checker) value(v Value, t TagInfo, what string) {
	var wv wire.Value
	switch t.Type {
	case tag.Bool:
		b, err := v.Bool()
		if err != nil {
			k.add(v.Pos, "%s: %v for bool tag %s", what, err, t.Name)
			return
		}
		if b {
			wv.Num = 1
		}
	case tag.String:
		wv = wire.Text(v.Raw)
	default:
		f, err := v.Float()
		if err != nil {
			k.add(v.Pos, "%s: %v; tag %s is %s", what, err, t.Name, t.Type)
			return
		}
		wv.Num = f
	}
	if st := wire.CheckValue(&t.Info, wv); st != wire.Applied {
		k.add(v.Pos, "%s: %s", what, wire.Explain(&t.Info, wv, st))
	}
}

func (k *checker) tasks() {
	c := k.c
	tasks := map[string]Pos{}
	blocks := map[string]Pos{}
	for i := range c.Tasks {
		t := &c.Tasks[i]
		k.name(&t.Name, t.Pos, "task name", MaxTaskName, whyTaskName)
		if first, dup := tasks[t.Name]; dup && t.Name != "" {
			k.add(k.at(&t.Name, t.Pos), "task %q is defined twice (first at %s); give each task its own name", t.Name, first)
		}
		tasks[t.Name] = k.at(&t.Name, t.Pos)
		for j := range t.Blocks {
			b := &t.Blocks[j]
			k.name(&b.Name, b.Pos, "block name", MaxBlockName, whyBlockName)
			if first, dup := blocks[b.Name]; dup && b.Name != "" {
				k.add(k.at(&b.Name, b.Pos), "block %q is defined twice (first at %s); block names are unique across tasks", b.Name, first)
				continue
			}
			blocks[b.Name] = k.at(&b.Name, b.Pos)
			k.blocks[b.Name] = t.Name
		}
	}
	writers := map[string]string{} // tag -> "block.port" writing it
	for i := range c.Tasks {
		t := &c.Tasks[i]
		k.task(t)
		for j := range t.Blocks {
			k.block(t, &t.Blocks[j], writers)
		}
	}
}

func (k *checker) task(t *Task) {
	where := "task " + t.Name
	pp := k.at(&t.Period, t.Pos)
	switch {
	case t.Period <= 0:
		if k.c.written(&t.Period) {
			k.add(pp, "%s: period must be positive; write e.g. 10ms", where)
		}
	case k.known && t.Period.D() < k.board.MinPeriod:
		k.add(pp, "%s: period %s is shorter than board %s sustains (%s); write %s or longer", where, t.Period, k.board.Name, k.board.MinPeriod, k.board.MinPeriod)
	}
	if t.Priority < 0 || t.Priority > 99 || (t.Priority == 0 && k.c.written(&t.Priority)) {
		k.add(k.at(&t.Priority, t.Pos), "%s: priority %d is outside 1-99 (SCHED_FIFO); write e.g. 80", where, t.Priority)
	}
	if t.CPU != nil && len(k.cpus) > 0 && !slices.Contains(k.cpus, *t.CPU) {
		k.add(k.at(&t.CPU, t.Pos), "%s: cpu %d is not one of the partition's CPUs (%s); pick one of them or add it to partition.cpus", where, *t.CPU, k.cpus)
	}
	if t.Commands < 0 {
		k.add(k.at(&t.Commands, t.Pos), "%s: commands %d is negative; write 0 or more", where, t.Commands)
	}
}

// block checks what a block's inputs read and its outputs write; its type,
// ports, parameters and units are the block catalogue's rules (Check).
func (k *checker) block(t *Task, b *Block, writers map[string]string) {
	where := "block " + b.Name
	for _, port := range sortedKeys(b.Inputs) {
		r := b.Inputs[port]
		pos := r.Pos
		if pos.Line == 0 {
			_, pos = k.c.EntryPos(b.Inputs, port, b.Pos)
		}
		if r.Raw == "" {
			k.add(pos, "%s: input %s is empty; write a tag name, block.port or a number", where, port)
			continue
		}
		if !k.bounded(r.Raw, pos, where+": input "+port, MaxString, whyString) {
			continue
		}
		if _, lit := r.Literal(); lit || r.IsExpr() {
			continue // an expression's names are the block catalogue's to check
		}
		if blk, _, isPort := r.Block(); isPort {
			switch owner, ok := k.blocks[blk]; {
			case !ok:
				k.add(pos, "%s: input %s reads %q, but there is no block %q%s", where, port, r.Raw, blk, DidYouMean(blk, sortedKeys(k.blocks)))
			case owner != t.Name:
				k.add(pos, "%s: input %s reads block %s of task %s; a block reads only blocks of its own task, so write that output to a tag and read the tag", where, port, blk, owner)
			}
			continue
		}
		if _, ok := k.tags[r.Raw]; !ok {
			k.add(pos, "%s: input %s reads unknown tag %q%s", where, port, r.Raw, DidYouMean(r.Raw, sortedKeys(k.tags)))
		}
	}
	for _, port := range sortedKeys(b.Outputs) {
		name := b.Outputs[port]
		_, pos := k.c.EntryPos(b.Outputs, port, b.Pos)
		info, ok := k.tags[name]
		switch {
		case name == "":
			k.add(pos, "%s: output %s names no tag; write the tag it sets", where, port)
			continue
		case !ok && !k.bounded(name, pos, where+": output "+port, MaxTagName, whyTagName):
			continue
		case !ok:
			k.add(pos, "%s: output %s writes unknown tag %q%s", where, port, name, DidYouMean(name, sortedKeys(k.tags)))
			continue
		case info.Device != "" && !info.Access.Writable():
			k.add(pos, "%s: output %s writes tag %s, which is read-only (access read on device %s); write to a holding register or coil, or set access: read_write", where, port, name, info.Device)
		}
		if other, dup := writers[name]; dup {
			k.add(pos, "%s: output %s writes tag %s, which %s already writes; a tag has one writer", where, port, name, other)
		} else {
			writers[name] = b.Name + "." + port
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (k *checker) watchdog() {
	w := &k.c.Watchdog
	if w.Overruns < 0 || (w.Overruns == 0 && k.c.written(&w.Overruns)) {
		k.add(k.at(&w.Overruns, w.Pos), "watchdog: overruns %d must be 1 or more; write e.g. 3", w.Overruns)
	}
	if w.Heartbeat < 0 || (w.Heartbeat == 0 && k.c.written(&w.Heartbeat)) {
		k.add(k.at(&w.Heartbeat, w.Pos), "watchdog: heartbeat %d must be 1 or more; write e.g. 10", w.Heartbeat)
	}
	for _, name := range sortedKeys(w.SafeState) {
		v := w.SafeState[name]
		keyPos, _ := k.c.EntryPos(w.SafeState, name, w.Pos)
		info, ok := k.tags[name]
		switch {
		case !ok:
			k.add(keyPos, "safe_state: unknown tag %q%s", name, DidYouMean(name, sortedKeys(k.tags)))
		case info.Device != "" && !info.Access.Writable():
			k.add(keyPos, "safe_state: tag %s is read-only (access read on device %s); only outputs have a safe state", name, info.Device)
		case !v.Set:
			k.add(keyPos, "safe_state: tag %s has no value; write the value it is driven to", name)
		default:
			k.value(v, info, "safe_state of "+name)
		}
	}
}

func (k *checker) bridge() {
	b := &k.c.Bridge
	m := &b.MQTT
	listens := map[string]string{}
	listen := func(p *string, pos Pos, what string) {
		if *p == "" {
			return
		}
		if !k.hostPort(p, pos, what, true) {
			return
		}
		if other, dup := listens[*p]; dup {
			k.add(k.at(p, pos), "%s %s is also the %s; give each its own port", what, *p, other)
		}
		listens[*p] = what
	}
	switch {
	case m.Broker == "" || m.Broker == DefaultBroker:
		listen(&m.Listen, m.Pos, "mqtt.listen")
	default:
		u, err := url.Parse(m.Broker)
		schemes := []string{"tcp", "ssl", "mqtt", "mqtts", "ws", "wss"}
		switch {
		case err != nil || u.Host == "":
			k.add(k.at(&m.Broker, m.Pos), "mqtt.broker %q is neither embedded nor a URL; write embedded or e.g. tcp://host:1883", m.Broker)
		case !slices.Contains(schemes, u.Scheme):
			k.add(k.at(&m.Broker, m.Pos), "mqtt.broker scheme %q is not one of %s; write e.g. tcp://host:1883", u.Scheme, strings.Join(schemes, ", "))
		}
	}
	if m.Password != "" && m.PasswordFile != "" {
		k.add(k.at(&m.PasswordFile, m.Pos), "mqtt: give password or password_file, not both (prefer password_file)")
	}
	k.file(&m.PasswordFile, m.Pos, "mqtt.password_file")
	k.mqttUsers(m, &b.Sparkplug)
	k.tls(&m.TLS, "mqtt.tls")
	if m.QoS < 0 || m.QoS > 1 {
		k.add(k.at(&m.QoS, m.Pos), "mqtt.qos %d is not 0 or 1", m.QoS)
	}
	if m.KeepAlive < 0 || (m.KeepAlive > 0 && m.KeepAlive.D().Seconds() < 1) {
		k.add(k.at(&m.KeepAlive, m.Pos), "mqtt.keepalive %s is shorter than 1s; write e.g. 30s", m.KeepAlive)
	}
	s := &b.Sparkplug
	for _, id := range []struct {
		p    *string
		name string
	}{{&s.Group, "group"}, {&s.Node, "node"}, {&s.PrimaryHost, "primary_host"}} {
		if strings.ContainsAny(*id.p, "/+#") {
			k.add(k.at(id.p, s.Pos), "sparkplug.%s %q contains one of / + #, which MQTT topics reserve; use letters, digits, '-' and '_'", id.name, *id.p)
		}
	}
	if strings.ContainsAny(b.JSON.Prefix, "+#") {
		k.add(k.at(&b.JSON.Prefix, b.JSON.Pos), "json.prefix %q contains + or #, which are MQTT wildcards; remove them", b.JSON.Prefix)
	}
	k.modbusServer(&b.Modbus, listen)
	listen(&b.Metrics.Listen, b.Metrics.Pos, "metrics.listen")
	k.web(&b.Web, listen)
}

func (k *checker) web(w *Web, listen func(*string, Pos, string)) {
	listen(&w.Listen, w.Pos, "web.listen")
	k.tls(&w.TLS, "web.tls")
	if w.TLS.CA != "" || w.TLS.ClientAuth {
		k.add(k.at(&w.TLS.CA, w.TLS.Pos), "web.tls: ca and client_auth are not used; the HMI logs users in with their MQTT user name and password")
	}
	// (a negative duration does not decode; 0 is the default, 1h of 1s)
	span, every := cmp.Or(w.Trend.D(), time.Hour), cmp.Or(w.TrendEvery.D(), time.Second)
	if span/every > 1_000_000 {
		k.add(k.at(&w.Trend, w.Pos), "web.trend %s holds more than 1000000 samples of trend_every %s per tag; lengthen trend_every", span, every)
	}
}

// mqttUsers checks the embedded broker's users and limits.
func (k *checker) mqttUsers(m *MQTT, sp *Sparkplug) {
	primaryHost := sp.PrimaryHost
	embedded := m.Broker == "" || m.Broker == DefaultBroker
	if embedded && primaryHost != "" && m.Username == "" && !slices.ContainsFunc(m.Users, func(u User) bool { return u.PrimaryHost }) {
		k.add(k.at(&sp.PrimaryHost, sp.Pos), "sparkplug.primary_host %q: no user of the embedded broker may publish its STATE, so the node would never birth; mark the host's user in mqtt.users primary_host: true", primaryHost)
	}
	users := map[string]bool{}
	for i := range m.Users {
		u := &m.Users[i]
		if users[u.Username] && u.Username != "" {
			k.add(k.at(&u.Username, u.Pos), "mqtt.users: user %q is listed twice; list each user once", u.Username)
		}
		users[u.Username] = true
		if bridge := cmp.Or(m.Username, "mkrt-bridge"); u.Username == bridge {
			k.add(k.at(&u.Username, u.Pos), "mqtt.users: user %q is the bridge's own credential (mqtt.username); give the user another name", u.Username)
		}
		switch {
		case u.Password != "" && u.PasswordFile != "":
			k.add(k.at(&u.PasswordFile, u.Pos), "mqtt.users: user %q has password and password_file; give one (prefer password_file)", u.Username)
		case u.Password == "" && u.PasswordFile == "":
			k.add(k.at(&u.Username, u.Pos), "mqtt.users: user %q has no password; give password_file (a bcrypt hash) or password", u.Username)
		case u.PasswordFile != "":
			k.bcryptFile(&u.PasswordFile, u.Pos)
		}
		if u.PrimaryHost && primaryHost == "" {
			k.add(k.at(&u.PrimaryHost, u.Pos), "mqtt.users: user %q is primary_host but sparkplug.primary_host is not set; set it or remove primary_host", u.Username)
		}
		if u.ReadOnly && len(u.Topics.Publish) > 0 {
			k.add(k.at(&u.Topics.Publish, u.Topics.Pos), "mqtt.users: user %q is read_only but has topics.publish; remove one of them", u.Username)
		}
		for _, list := range []*[]string{&u.Topics.Publish, &u.Topics.Subscribe} {
			for j, f := range *list {
				if !validFilter(f) {
					k.add(k.at(&(*list)[j], u.Topics.Pos), "mqtt.users: %q is not an MQTT topic filter: '#' only as the last level, '+' only as a whole level, no empty filter", f)
				}
			}
		}
	}
	l := &m.Limits
	if l.MaxPacket < 0 || l.MaxPacket > 256<<20 || (l.MaxPacket > 0 && l.MaxPacket < 1024) {
		k.add(k.at(&l.MaxPacket, l.Pos), "mqtt.limits.max_packet %d is outside 1Ki..256Mi; write e.g. 1Mi", int64(l.MaxPacket))
	}
	for _, n := range []struct {
		p    *int
		name string
	}{{&l.MaxClients, "max_clients"}, {&l.MaxInflight, "max_inflight"}, {&l.MessageRate, "message_rate"}} {
		if *n.p < 0 || *n.p > 65535 {
			k.add(k.at(n.p, l.Pos), "mqtt.limits.%s %d is outside 0..65535 (0 takes the default)", n.name, *n.p)
		}
	}
	if l.ConnectTimeout < 0 || l.ConnectTimeout.D() > time.Minute {
		k.add(k.at(&l.ConnectTimeout, l.Pos), "mqtt.limits.connect_timeout %s is outside 0..1m; write e.g. 5s", l.ConnectTimeout)
	}
}

// bcryptFile checks that the file at *p holds a bcrypt hash.
func (k *checker) bcryptFile(p *string, pos Pos) {
	b, err := os.ReadFile(k.c.ResolvePath(*p))
	if err != nil {
		k.add(k.at(p, pos), "mqtt.users password_file: cannot read %s: %v (relative paths start at the config file's directory)", k.c.ResolvePath(*p), unwrapPathErr(err))
		return
	}
	if _, err := bcrypt.Cost(bytes.TrimSpace(b)); err != nil {
		k.add(k.at(p, pos), "mqtt.users password_file %s does not hold a bcrypt hash ($2a$/$2b$/$2y$…): %v; make one with htpasswd -nbBC 10 '' PASSWORD | tr -d ':\\n'", *p, err)
	}
}

// validFilter reports whether f is a valid MQTT topic filter.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if (strings.Contains(l, "#") && (l != "#" || i != len(levels)-1)) || (strings.Contains(l, "+") && l != "+") {
			return false
		}
	}
	return true
}

func (k *checker) modbusServer(ms *ModbusServer, listen func(*string, Pos, string)) {
	listen(&ms.Listen, ms.Pos, "modbus.listen")
	if ms.MaxClients < 0 {
		k.add(k.at(&ms.MaxClients, ms.Pos), "modbus.max_clients %d is negative; write e.g. 16", ms.MaxClients)
	}
	if ms.UnitID < 0 || ms.UnitID > 247 {
		k.add(k.at(&ms.UnitID, ms.Pos), "modbus.unit_id %d is outside 0-247", ms.UnitID)
	}
	k.tls(&ms.TLS, "modbus.tls")
	if ms.MaxClientsPerAddress < 0 {
		k.add(k.at(&ms.MaxClientsPerAddress, ms.Pos), "modbus.max_clients_per_address %d is negative; write e.g. 4", ms.MaxClientsPerAddress)
	}
	for _, a := range ms.WriteAllow {
		if _, err := netip.ParsePrefix(a); err != nil {
			k.add(k.at(&ms.WriteAllow, ms.Pos), "modbus.write_allow %q is not a network in CIDR form; write e.g. 10.0.0.0/8 or 192.168.1.20/32", a)
		}
	}
	if len(ms.WriteRoles) > 0 && ms.TLS.Cert == "" {
		k.add(k.at(&ms.WriteRoles, ms.Pos), "modbus.write_roles needs MBAPS (modbus.tls cert, key and ca): roles come from client certificates; plaintext clients write by write_allow")
	}
	for _, r := range ms.WriteRoles {
		if r == "" {
			k.add(k.at(&ms.WriteRoles, ms.Pos), "modbus.write_roles: an empty role; name the role as the client certificates carry it, e.g. operator")
		}
	}
	id := &ms.Identification
	for _, f := range []struct {
		p    *string
		name string
	}{{&id.Vendor, "vendor"}, {&id.Product, "product"}, {&id.Version, "version"}} {
		if len(*f.p) > 64 {
			k.add(k.at(f.p, id.Pos), "modbus.identification.%s is %d bytes; Read Device Identification carries at most 64", f.name, len(*f.p))
		}
	}
	spans := make([]span, 0, len(ms.Map))
	for i := range ms.Map {
		e := &ms.Map[i]
		where := "modbus.map entry " + e.Tag
		info, ok := k.tags[e.Tag]
		if !ok {
			if e.Tag != "" {
				k.add(k.at(&e.Tag, e.Pos), "%s: unknown tag %q%s", where, e.Tag, DidYouMean(e.Tag, sortedKeys(k.tags)))
			}
			continue
		}
		k.dataType(&e.Type, e.Pos, where)
		typ := e.Type
		setDefault(&typ, info.Type)
		n := max(typ.Registers(info.Length), 1)
		if e.Area == AreaCoil || e.Area == AreaDiscrete {
			n = 1
			if typ != tag.Bool {
				k.add(k.at(&e.Area, e.Pos), "%s: a %s holds one bit but the value is %s; map it to a register area (input or holding)", where, e.Area, typ)
			}
		}
		if (e.Area == AreaCoil || e.Area == AreaHolding) && !info.Writable {
			k.add(k.at(&e.Area, e.Pos), "%s: tag %s is not writable by SCADA, so it cannot be a %s; map it to %s or make the tag writable", where, e.Tag, e.Area,
				map[Area]Area{AreaCoil: AreaDiscrete, AreaHolding: AreaInput}[e.Area])
		}
		if e.Address < 0 || e.Address+n > 65536 {
			k.add(k.at(&e.Address, e.Pos), "%s: address %d is outside 0-65535 (the value takes %d registers)", where, e.Address, n)
		}
		if e.Scale != nil && *e.Scale == 0 {
			k.add(k.at(&e.Scale, e.Pos), "%s: scale 0 divides by zero; write a non-zero scale or remove it", where)
		}
		spans = append(spans, span{name: e.Tag, area: e.Area, start: e.Address, n: n, bit: -1, pos: k.at(&e.Address, e.Pos)})
	}
	k.overlaps(spans, "map entry", "in the Modbus server map")
}

// hostPort checks a host:port address; listen addresses may leave the
// host empty (all interfaces).
func (k *checker) hostPort(p *string, pos Pos, what string, listen bool) bool {
	host, port, err := net.SplitHostPort(*p)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 || (!listen && (host == "" || n == 0)) {
		k.add(k.at(p, pos), "%s %q is not host:port; write e.g. 127.0.0.1:5020", what, *p)
		return false
	}
	return true
}

func (k *checker) tls(t *TLS, what string) {
	k.file(&t.CA, t.Pos, what+".ca")
	k.file(&t.Cert, t.Pos, what+".cert")
	k.file(&t.Key, t.Pos, what+".key")
	if (t.Cert == "") != (t.Key == "") {
		k.add(t.Pos, "%s: cert and key go together; give both or neither", what)
	}
	if t.ClientAuth && t.CA == "" {
		k.add(k.at(&t.ClientAuth, t.Pos), "%s: client_auth needs ca, the CA that signs client certificates", what)
	}
}

// file checks that a named file exists (relative to the config's directory).
func (k *checker) file(p *string, pos Pos, what string) {
	if *p == "" || k.noFiles {
		return
	}
	path := k.c.ResolvePath(*p)
	if _, err := os.Stat(path); err != nil {
		k.add(k.at(p, pos), "%s: cannot read %s: %v (relative paths start at the config file's directory)", what, path, unwrapPathErr(err))
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (k *checker) latency() {
	l := &k.c.Latency
	if l.Digits < 0 || l.Digits > 5 || (l.Digits == 0 && k.c.written(&l.Digits)) {
		k.add(k.at(&l.Digits, l.Pos), "latency.digits %d is outside 1-5; write 3", l.Digits)
	}
	if l.Highest != 0 && l.Highest.D().Microseconds() < 1 {
		k.add(k.at(&l.Highest, l.Pos), "latency.highest %s is below 1us; write e.g. 100ms", l.Highest)
	}
}

// span is the address range a tag takes in one Modbus area.
type span struct {
	name       string
	area       Area
	start, n   int
	bit        int // -1: the whole register
	pos        Pos
	declaredAt int
}

// overlaps reports entries whose address ranges overlap within one area.
// Bit tags may share a register when their bits differ.
func (k *checker) overlaps(spans []span, what, where string) {
	for i := range spans {
		spans[i].declaredAt = i
	}
	sort.SliceStable(spans, func(i, j int) bool {
		a, b := spans[i], spans[j]
		if a.area != b.area {
			return a.area < b.area
		}
		if a.start != b.start {
			return a.start < b.start
		}
		return a.declaredAt < b.declaredAt
	})
	var far *span
	bits := map[[2]int]string{}
	for i := range spans {
		s := &spans[i]
		if far != nil && far.area != s.area {
			far, bits = nil, map[[2]int]string{}
		}
		if s.bit >= 0 {
			if other, dup := bits[[2]int{s.start, s.bit}]; dup {
				k.add(s.pos, "%s %s uses bit %d of %s %d, as does %s %s; pick another bit", what, s.name, s.bit, s.area, s.start, what, other)
			}
			bits[[2]int{s.start, s.bit}] = s.name
		}
		if far != nil && s.start < far.start+far.n && !(s.bit >= 0 && far.bit >= 0) {
			k.add(s.pos, "%s %s (%s) overlaps %s %s (%s) %s; move it to address %d or later", what, s.name, s.describe(), what, far.name, far.describe(), where, far.start+far.n)
		}
		if far == nil || s.start+s.n > far.start+far.n {
			far = s
		}
	}
}

func (s *span) describe() string {
	if s.n == 1 {
		return fmt.Sprintf("%s %d", s.area, s.start)
	}
	return fmt.Sprintf("%s %d-%d", s.area, s.start, s.start+s.n-1)
}

// unitAliases maps ways of writing a unit to one spelling.
var unitAliases = map[string]string{
	"°c": "degc", "degc": "degc", "celsius": "degc", "deg c": "degc", "℃": "degc",
	"°f": "degf", "degf": "degf", "fahrenheit": "degf", "℉": "degf",
	"k": "k", "kelvin": "k",
	"%": "%", "percent": "%", "pct": "%",
	"s": "s", "sec": "s", "second": "s", "seconds": "s",
	"ms": "ms", "msec": "ms",
	"m": "m", "meter": "m", "metre": "m", "meters": "m", "metres": "m",
	"mm": "mm", "cm": "cm",
	"m3/h": "m3/h", "m³/h": "m3/h",
	"l/min": "l/min", "lpm": "l/min",
	"l/s": "l/s",
	"bar": "bar", "mbar": "mbar", "pa": "pa", "kpa": "kpa",
	"rpm": "rpm", "1/min": "rpm",
}

// UnitsMatch reports whether two engineering units are the same unit: an
// empty unit matches anything, case does not matter, and common spellings
// are the same ("°C" = "degC" = "celsius", "%" = "percent").
func UnitsMatch(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if a == "" || b == "" || a == b {
		return true
	}
	if x, ok := unitAliases[a]; ok {
		a = x
	}
	if x, ok := unitAliases[b]; ok {
		b = x
	}
	return a == b
}

// standbyCPUs checks partition.standby_cpus: as many CPUs as the partition
// has, none of them, each once and on the board.
func (k *checker) standbyCPUs(p *Partition, b boards.Board) {
	if len(p.StandbyCPUs) == 0 {
		return
	}
	pos := k.at(&p.StandbyCPUs, p.Pos)
	seen := map[int]bool{}
	for _, cpu := range p.StandbyCPUs {
		if seen[cpu] {
			k.add(pos, "partition.standby_cpus: CPU %d is listed twice; list each CPU once", cpu)
		}
		seen[cpu] = true
		if k.known && cpu >= b.CPUs {
			k.add(pos, "partition.standby_cpus: CPU %d is outside board %s, which has CPUs 0-%d; pick CPUs below %d", cpu, b.Name, b.CPUs-1, b.CPUs)
		}
		if slices.Contains(k.cpus, cpu) {
			k.add(pos, "partition.standby_cpus: CPU %d is also in partition.cpus (%s); the standby CPUs must be others, where the new program runs while the old one still holds cpus", cpu, k.cpus)
		}
	}
	if len(k.cpus) > 0 && len(p.StandbyCPUs) != len(k.cpus) {
		k.add(pos, "partition.standby_cpus: %d CPUs (%s) for a partition of %d (%s); give as many standby CPUs as the partition has", len(p.StandbyCPUs), p.StandbyCPUs, len(k.cpus), k.cpus)
	}
}
