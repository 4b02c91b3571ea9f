// Package configs is the YAML control-config schema a plant engineer writes,
// with its loader and validator.
//
// A control config describes one partition: the board and backend it runs on,
// the field devices and their tags, internal tags, the cyclic tasks with their
// function blocks, the watchdog and safe state, the bridge to SCADA, and the
// latency recording settings. Load parses a file, reports every problem at
// once as "file:line:col: what is wrong (and the fix)", and never panics.
// Every name is bounded by the tightest place it is used (MaxPartitionName
// and the other limits), and every file path is made absolute against the
// config file's directory as it is loaded, so the file checked is the file
// opened.
//
// The zero value of every struct is its default; Defaults fills the values a
// plant engineer may leave out. Nothing here needs privileges or hardware.
package configs

import (
	"fmt"
	"time"

	"github.com/mkrt/mkrt/shm/tag"
)

// Config is one control config: a partition and the plant program it runs.
type Config struct {
	Pos       Pos       `yaml:"-"`
	Metadata  Metadata  `yaml:"metadata" doc:"who and where: the plant program's name and site"`
	Partition Partition `yaml:"partition" doc:"the cores, memory, NICs and kernel the control program runs on"`
	Devices   []Device  `yaml:"devices" doc:"field devices (remote I/O, drives) polled over the dedicated NIC"`
	Tags      []Tag     `yaml:"tags" doc:"internal tags: setpoints, parameters, intermediate values"`
	Tasks     []Task    `yaml:"tasks" doc:"cyclic tasks and the function blocks each runs every cycle"`
	Watchdog  Watchdog  `yaml:"watchdog" doc:"overrun and heartbeat supervision, and the safe state of outputs"`
	Bridge    Bridge    `yaml:"bridge" doc:"how SCADA reads and commands the plant: MQTT (Sparkplug B, JSON) and Modbus TCP"`
	Latency   Latency   `yaml:"latency" doc:"jitter histogram recording"`
	// BlockTypes are user-defined function blocks (configs/blocktypes.go),
	// expanded into their blocks as the config is parsed.
	BlockTypes []BlockTypeDef `yaml:"block_types" doc:"user-defined function blocks: reusable groups of blocks with inputs, outputs and parameters, instantiated in tasks by name"`

	// where holds the position of every field and map entry decoded from a
	// file (see FieldPos and EntryPos); nil for a config built in code.
	where *positions
	// dir is the directory of the config file; relative paths in the
	// config are resolved against it (see ResolvePath).
	dir string
}

// Metadata names the plant program.
type Metadata struct {
	Pos         Pos    `yaml:"-"`
	Name        string `yaml:"name" doc:"name of the control program; letters, digits, '-', '_'" required:"true"`
	Site        string `yaml:"site" doc:"plant or site the program runs at"`
	Description string `yaml:"description" doc:"free text"`
	Version     string `yaml:"version" doc:"the engineer's own version label for this config"`
	Timezone    string `yaml:"timezone" doc:"the plant's time zone, an IANA name such as Europe/Berlin: scheduler blocks' windows are in its local time; default UTC"`
}

// Backend is how a partition gets its own kernel and cores.
type Backend string

// The partition backends (DESIGN.md §3).
const (
	BackendProcess     Backend = "process"
	BackendVM          Backend = "vm"
	BackendMultikernel Backend = "multikernel"
	BackendParker      Backend = "parker"
	BackendJailhouse   Backend = "jailhouse"
)

// Backends lists every backend name, in documentation order.
var Backends = []Backend{BackendProcess, BackendVM, BackendMultikernel, BackendParker, BackendJailhouse}

// Partition is the slice of the machine the control program gets.
type Partition struct {
	Pos     Pos     `yaml:"-"`
	Board   string  `yaml:"board" doc:"reference board name (mkrt board list) or path to a board file; default generic-x86_64"`
	Backend Backend `yaml:"backend" doc:"process (default), vm, multikernel, parker or jailhouse" enum:"process,vm,multikernel,parker,jailhouse"`
	CPUs    CPUList `yaml:"cpus" doc:"host CPUs given to the partition, as a cpulist (\"2-3\", \"1,3\") or a list of numbers"`
	// StandbyCPUs are where the next generation of the partition starts on
	// standby during a hand-over (mkrt apply of a structural change); the
	// generation after it returns to CPUs.
	StandbyCPUs CPUList `yaml:"standby_cpus" doc:"host CPUs where a hand-over (mkrt apply of a structural change) starts the new control program on standby, as many as cpus and none of them; without it the new program starts on cpus, which works only while the running partition holds no cpuset (not root)"`
	Memory      Size    `yaml:"memory" doc:"memory for the partition (vm and kexec backends): 256Mi, 1Gi; default 256Mi"`
	NICs        []NIC   `yaml:"nics" doc:"dedicated NICs moved into the partition"`
	Kernel      Kernel  `yaml:"kernel" doc:"the application kernel (vm and kexec backends)"`
	// SharedMemory is the size of the shared-memory channel; default 4Mi.
	SharedMemory Size `yaml:"shared_memory" doc:"size of the shared-memory channel region; default 4Mi"`
}

// NIC is a dedicated network interface, named by interface or PCI address.
type NIC struct {
	Pos       Pos    `yaml:"-"`
	Interface string `yaml:"interface" doc:"host interface name, e.g. eth1 (one of interface or pci)"`
	PCI       string `yaml:"pci" doc:"PCI address, e.g. 0000:03:00.0 (one of interface or pci)"`
	Address   string `yaml:"address" doc:"address inside the partition in CIDR form, e.g. 10.10.0.2/24"`
	Gateway   string `yaml:"gateway" doc:"default gateway inside the partition"`
	// HostAddress is the host end of a vm partition's tap NIC.
	HostAddress string `yaml:"host_address" doc:"vm backend with an interface that is not a host NIC: a tap of that name is created with this address (CIDR), e.g. 10.213.0.1/30"`
	// Bridge is the host bridge a vm partition's tap joins instead of
	// getting HostAddress: the guest is then on the field network the
	// bridge carries, and the host has no address on it.
	Bridge string `yaml:"bridge" doc:"vm backend with an interface that is not a host NIC: a tap of that name is created without an address and joins this existing host bridge (e.g. br-field, which carries the field network); one of host_address or bridge"`
	// StandbyAddress is the guest's address while a hand-over runs the
	// next generation beside the running one on the bridge; the
	// generation after it returns to Address.
	StandbyAddress string `yaml:"standby_address" doc:"with bridge: the address (CIDR, in address's subnet) of a hand-over's new guest, which polls the field devices beside the running guest until the switch; the generation after it returns to address"`
}

// Kernel is the application kernel image and its command line.
type Kernel struct {
	Pos     Pos      `yaml:"-"`
	Image   string   `yaml:"image" doc:"path to the kernel (bzImage or ELF vmlinux)"`
	Initrd  string   `yaml:"initrd" doc:"path to a prebuilt mkrt initramfs; default: built on start"`
	Cmdline string   `yaml:"cmdline" doc:"extra kernel command line appended to the generated one"`
	Modules []string `yaml:"modules" doc:"extra kernel modules to load in the application kernel"`
}

// Device is a field device polled by the executive's I/O.
type Device struct {
	Pos     Pos      `yaml:"-"`
	Name    string   `yaml:"name" doc:"device name, unique" required:"true"`
	Driver  Driver   `yaml:"driver" doc:"modbus-tcp, modbus-rtu or modbus-rtu-over-tcp" enum:"modbus-tcp,modbus-rtu,modbus-rtu-over-tcp" required:"true"`
	Address string   `yaml:"address" doc:"host:port for TCP drivers, serial device path for modbus-rtu" required:"true"`
	UnitID  int      `yaml:"unit_id" doc:"Modbus unit (slave) id, 0-247; default 1"`
	Timeout Duration `yaml:"timeout" doc:"per-request timeout; default 500ms"`
	Poll    Duration `yaml:"poll" doc:"poll period; default 100ms"`
	Retries int      `yaml:"retries" doc:"retries of a failed request before the tags turn bad; default 1"`
	// MaxGap is the widest run of unused registers a grouped read may span.
	MaxGap int `yaml:"max_gap" doc:"widest gap of unused registers one grouped read may span; default 8"`
	// WriteEvery re-writes outputs periodically even when unchanged (0: on change only).
	WriteEvery Duration `yaml:"write_every" doc:"re-write outputs at this period even when unchanged; default 0 (on change only)"`
	Serial     Serial   `yaml:"serial" doc:"serial line settings for modbus-rtu"`
	Tags       []IOTag  `yaml:"tags" doc:"the device's tags"`
	Interface  string   `yaml:"interface" doc:"dedicated NIC the connection is bound to; default: the partition's first NIC"`
	// Watchdog is the device's own comm-loss watchdog.
	Watchdog DeviceWatchdog `yaml:"watchdog" doc:"the device's own comm-loss watchdog: the device drives its outputs to the safe values configured on it when mkrt stops talking to it"`
}

// DeviceWatchdog is a field device's own comm-loss watchdog, as remote-I/O
// couplers have it: a timeout register written at connect and a keep-alive
// register written periodically (WAGO 750-352: holding 0x1000 "watchdog
// time" in 100 ms steps and 0x1003 "watchdog trigger"; Beckhoff BK9000:
// 0x1120 in ms and 0x1121 "watchdog reset"). When no keep-alive (or, on
// devices fed by any request, no Modbus request) arrives within the
// timeout, the device itself drives its outputs to the safe values
// configured on it: the last line of defence when neither the partition
// nor the supervisor can reach it (DESIGN.md §6).
//
// The device's scanner writes timeout / timeout_unit to timeout_register at
// every connect, then keepalive_register (an incrementing or toggling
// value) every keepalive_every. Without keepalive_register the device is
// taken to restart its watchdog on any request, so the polls feed it.
// Without timeout_register the timeout is set on the device (its web page,
// DIP switches) and timeout here only checks the keep-alive period. The
// zero value (no timeout) is no watchdog.
type DeviceWatchdog struct {
	Pos     Pos      `yaml:"-"`
	Timeout Duration `yaml:"timeout" doc:"the device's comm-loss timeout (needed by the other keys): without a keep-alive for this long it drives its outputs to their safe values, e.g. 1s"`
	// TimeoutRegister receives Steps() at every connect.
	TimeoutRegister *WatchdogRegister `yaml:"timeout_register" doc:"holding register the timeout is written to at every connect (as timeout / timeout_unit, uint16); omit it when the timeout is set on the device"`
	TimeoutUnit     Duration          `yaml:"timeout_unit" doc:"the step of timeout_register as the device's manual gives it: 1ms (default), 10ms, 100ms (WAGO 750-352), 1s"`
	// KeepAliveRegister is written every KeepAlivePeriod().
	KeepAliveRegister *WatchdogRegister `yaml:"keepalive_register" doc:"holding register or coil written every keepalive_every to keep the watchdog from expiring; omit it for devices whose watchdog any Modbus request restarts (the polls then keep it fed)"`
	KeepAliveEvery    Duration          `yaml:"keepalive_every" doc:"keep-alive period, shorter than timeout; default timeout/3 (whole milliseconds)"`
	KeepAliveValue    KeepAliveValue    `yaml:"keepalive_value" doc:"what the keep-alive writes: increment (default for a register: 1, 2, ... 65535, 1, ...) or toggle (1, 0, 1, ...; a coil always toggles)" enum:"increment,toggle"`
}

// WatchdogRegister is one register or coil of a device's watchdog.
type WatchdogRegister struct {
	Pos     Pos  `yaml:"-"`
	Area    Area `yaml:"area" doc:"holding (default), or coil for a keep-alive" enum:"coil,discrete,input,holding"`
	Address int  `yaml:"address" doc:"zero-based address, as the device's manual gives it (0x1000 is 4096)" required:"true"`
}

// KeepAliveValue is what a device watchdog's keep-alive writes.
type KeepAliveValue string

// The keep-alive values.
const (
	// KeepAliveIncrement writes 1, 2, ... 65535, then 1 again (never 0,
	// which some devices read as "off").
	KeepAliveIncrement KeepAliveValue = "increment"
	// KeepAliveToggle writes 1, 0, 1, ...
	KeepAliveToggle KeepAliveValue = "toggle"
)

// The defaults of a device watchdog's left-out values.
const (
	DefaultWatchdogUnit = Duration(time.Millisecond)
	// MaxWatchdogSteps is the largest value a 16-bit timeout register holds.
	MaxWatchdogSteps = 65535
)

// Enabled reports whether the device has a watchdog (a timeout).
func (w *DeviceWatchdog) Enabled() bool { return w.Timeout > 0 }

// Unit is the step of the timeout register: timeout_unit, default 1ms.
func (w *DeviceWatchdog) Unit() time.Duration {
	if w.TimeoutUnit > 0 {
		return w.TimeoutUnit.D()
	}
	return DefaultWatchdogUnit.D()
}

// Steps is the value written to the timeout register: the timeout in
// units. It is an error when the timeout is not a whole number of units or
// the value does not fit the register (1-65535).
func (w *DeviceWatchdog) Steps() (uint16, error) {
	unit := w.Unit()
	n := w.Timeout.D() / unit
	switch {
	case w.Timeout.D()%unit != 0:
		lo, hi := n*unit, (n+1)*unit
		if n == 0 {
			return 0, fmt.Errorf("timeout %s is shorter than one timeout_unit of %s", w.Timeout, unit)
		}
		return 0, fmt.Errorf("timeout %s is not a whole number of timeout_unit %s; write %s or %s", w.Timeout, unit, lo, hi)
	case n < 1 || n > MaxWatchdogSteps:
		return 0, fmt.Errorf("timeout %s is %d steps of %s, outside the register's 1-%d; check timeout_unit in the device's manual", w.Timeout, n, unit, MaxWatchdogSteps)
	}
	return uint16(n), nil
}

// KeepAlivePeriod is keepalive_every, default a third of the timeout in
// whole milliseconds (a third of it when that is below 1 ms).
func (w *DeviceWatchdog) KeepAlivePeriod() time.Duration {
	if w.KeepAliveEvery > 0 {
		return w.KeepAliveEvery.D()
	}
	d := w.Timeout.D() / 3
	if d >= time.Millisecond {
		d = d.Truncate(time.Millisecond)
	}
	return d
}

// KeepAliveMode is keepalive_value, default increment on a register and
// toggle on a coil.
func (w *DeviceWatchdog) KeepAliveMode() KeepAliveValue {
	switch {
	case w.KeepAliveValue != "":
		return w.KeepAliveValue
	case w.KeepAliveRegister != nil && w.KeepAliveRegister.RegisterArea() == AreaCoil:
		return KeepAliveToggle
	}
	return KeepAliveIncrement
}

// RegisterArea is the register's area, default holding.
func (r *WatchdogRegister) RegisterArea() Area {
	if r.Area == "" {
		return AreaHolding
	}
	return r.Area
}

// Defaults fills the watchdog's left-out values (nothing when it has no
// timeout); Config.Defaults calls it for every device.
func (w *DeviceWatchdog) Defaults() {
	if !w.Enabled() {
		return
	}
	if r := w.TimeoutRegister; r != nil {
		setDefault(&r.Area, r.RegisterArea())
		setDefault(&w.TimeoutUnit, Duration(w.Unit()))
	}
	if r := w.KeepAliveRegister; r != nil {
		setDefault(&r.Area, r.RegisterArea())
		setDefault(&w.KeepAliveEvery, Duration(w.KeepAlivePeriod()))
		setDefault(&w.KeepAliveValue, w.KeepAliveMode())
	}
}

// Driver is a field I/O driver name.
type Driver string

// The field I/O drivers.
const (
	DriverModbusTCP        Driver = "modbus-tcp"
	DriverModbusRTU        Driver = "modbus-rtu"
	DriverModbusRTUOverTCP Driver = "modbus-rtu-over-tcp"
)

// Serial is a serial line's settings.
type Serial struct {
	Pos      Pos    `yaml:"-"`
	BaudRate int    `yaml:"baud_rate" doc:"default 19200"`
	DataBits int    `yaml:"data_bits" doc:"default 8"`
	Parity   string `yaml:"parity" doc:"N, E or O; default E" enum:"N,E,O"`
	StopBits int    `yaml:"stop_bits" doc:"1 or 2; default 1"`
}

// Area is a Modbus data area.
type Area string

// The four Modbus data areas.
const (
	AreaCoil     Area = "coil"
	AreaDiscrete Area = "discrete"
	AreaInput    Area = "input"
	AreaHolding  Area = "holding"
)

// IOTag is a tag read from or written to a field device.
type IOTag struct {
	Pos  Pos    `yaml:"-"`
	Name string `yaml:"name" doc:"tag name, unique across the config" required:"true"`
	Area Area   `yaml:"area" doc:"coil, discrete, input or holding" enum:"coil,discrete,input,holding" required:"true"`
	// Address is the zero-based register or coil address.
	Address  int          `yaml:"address" doc:"zero-based register or coil address" required:"true"`
	Type     tag.DataType `yaml:"type" doc:"data type; default bool for coils and discrete inputs, uint16 for registers"`
	Order    Order        `yaml:"order" doc:"byte/word order of multi-register values: ABCD (default), CDAB, BADC, DCBA" enum:"ABCD,CDAB,BADC,DCBA"`
	Bit      *int         `yaml:"bit" doc:"read one bit (0-15) of a register as a bool"`
	Length   int          `yaml:"length" doc:"string length in bytes (string type only)"`
	Scale    *float64     `yaml:"scale" doc:"engineering value = raw * scale + offset; default 1"`
	Offset   float64      `yaml:"offset" doc:"engineering value = raw * scale + offset; default 0"`
	Unit     string       `yaml:"unit" doc:"engineering unit, e.g. m, degC, %"`
	Access   tag.Access   `yaml:"access" doc:"read (default for discrete and input), write, or read_write (default for coil and holding)" enum:"read,write,read_write"`
	Deadband float64      `yaml:"deadband" doc:"report-by-exception deadband for the bridge, in engineering units"`
	Min      *float64     `yaml:"min" doc:"lowest value a write may set"`
	Max      *float64     `yaml:"max" doc:"highest value a write may set"`
}

// Tag is an internal tag: a setpoint, a parameter or an intermediate value.
type Tag struct {
	Pos         Pos          `yaml:"-"`
	Name        string       `yaml:"name" doc:"tag name, unique across the config" required:"true"`
	Type        tag.DataType `yaml:"type" doc:"data type; default float64"`
	Initial     Value        `yaml:"initial" doc:"value at start (before any retained value is restored)"`
	Min         *float64     `yaml:"min" doc:"lowest value a write may set"`
	Max         *float64     `yaml:"max" doc:"highest value a write may set"`
	Unit        string       `yaml:"unit" doc:"engineering unit"`
	Writable    bool         `yaml:"writable" doc:"SCADA may write it (MQTT, Modbus); default false"`
	Retain      bool         `yaml:"retain" doc:"persisted by the supervisor and restored at start"`
	Deadband    float64      `yaml:"deadband" doc:"report-by-exception deadband for the bridge"`
	Length      int          `yaml:"length" doc:"maximum string length in bytes (string type only); default 32"`
	Description string       `yaml:"description" doc:"free text"`
}

// OverrunPolicy is what a task does when a cycle runs past its period.
type OverrunPolicy string

// The overrun policies.
const (
	// OverrunSkip drops the missed periods and waits for the next one.
	OverrunSkip OverrunPolicy = "skip"
	// OverrunCatchUp runs the missed cycles back to back.
	OverrunCatchUp OverrunPolicy = "catch_up"
)

// Task is a cyclic task: its timing and the blocks it runs every cycle.
type Task struct {
	Pos      Pos           `yaml:"-"`
	Name     string        `yaml:"name" doc:"task name, unique" required:"true"`
	Period   Duration      `yaml:"period" doc:"cycle period, e.g. 10ms, 250us" required:"true"`
	Priority int           `yaml:"priority" doc:"SCHED_FIFO priority 1-99; default 80"`
	CPU      *int          `yaml:"cpu" doc:"CPU the task is pinned to; default: the partition's first CPU"`
	Overrun  OverrunPolicy `yaml:"overrun" doc:"skip (default) or catch_up" enum:"skip,catch_up"`
	// Commands is the most commands drained per cycle.
	Commands int     `yaml:"commands" doc:"most commands applied at the start of one cycle; default 16"`
	Blocks   []Block `yaml:"blocks" doc:"function blocks, run in dependency order"`
}

// Block is one function block instance and its wiring.
//
// Inputs map an input port to a tag name or to "block.port" (another block's
// output) or to a literal number; outputs map an output port to the tag it
// writes.
type Block struct {
	Pos     Pos               `yaml:"-"`
	Name    string            `yaml:"name" doc:"block name, unique within the config" required:"true"`
	Type    string            `yaml:"type" doc:"block type, one of the function-block catalogue (README: Function blocks)" required:"true"`
	Inputs  map[string]Ref    `yaml:"inputs" doc:"input port -> tag name, block.port, or a literal"`
	Outputs map[string]string `yaml:"outputs" doc:"output port -> tag name written every cycle"`
	Params  map[string]Value  `yaml:"params" doc:"block parameters (gains, limits, times)"`
	// Expr is an expr block's expression (see rtkernel/blocks/expr).
	Expr Ref `yaml:"expr" doc:"expr blocks: the expression out is, e.g. \"fic_101.out * ratio + bias\""`
	// Steps are a sequence block's steps; the first is the initial step.
	Steps []Step `yaml:"steps" doc:"sequence blocks: the steps, the first is the initial (rest) step"`
}

// Step is one step of a sequence block (rtkernel/blocks: sequence).
type Step struct {
	Pos  Pos    `yaml:"-"`
	Name string `yaml:"name" doc:"step name, unique within the sequence" required:"true"`
	// Set gives tags their values while the step is active; a tag the step
	// does not list takes its value in the initial step (0 or false when
	// that does not list it either).
	Set map[string]Value `yaml:"set" doc:"tag -> value while the step is active (a tag not listed takes its initial-step value)"`
	// Enable names blocks of the task that run only while a step listing
	// them is active; otherwise they hold their state and outputs.
	Enable  []string     `yaml:"enable" doc:"blocks of the task that run only while a step listing them is active (otherwise they hold their state and outputs)"`
	MinTime Value        `yaml:"min_time" doc:"the step's transitions are not taken before it has been active this long"`
	Timeout Value        `yaml:"timeout" doc:"the sequence's alarm output turns on when the step has been active this long"`
	Next    []Transition `yaml:"next" doc:"transitions, tried in order; the first whose condition holds is taken"`
}

// Transition leaves a sequence step for step To when When holds.
type Transition struct {
	Pos  Pos    `yaml:"-"`
	To   string `yaml:"to" doc:"the step the transition leads to" required:"true"`
	When Ref    `yaml:"when" doc:"a bool: a tag, block.port or expression, e.g. \"level >= 2.5\"" required:"true"`
}

// IsExpr reports whether an input is written as an expression: it holds a
// character no name, block.port or number has (a space, an operator, a
// parenthesis, a quote). The block catalogue compiles and checks it.
func (r Ref) IsExpr() bool {
	if _, lit := r.Literal(); lit {
		return false
	}
	for _, c := range r.Raw {
		if !(c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return true
		}
	}
	return false
}

// Watchdog is overrun and heartbeat supervision and the safe state.
type Watchdog struct {
	Pos Pos `yaml:"-"`
	// Overruns is how many consecutive overruns drive outputs to the safe state.
	Overruns int `yaml:"overruns" doc:"consecutive overruns of a task that fault the executive; default 3"`
	// Heartbeat is how many missed periods make the supervisor declare the partition faulted.
	Heartbeat int `yaml:"heartbeat" doc:"missed heartbeat periods before the supervisor declares the partition faulted; default 10"`
	// SafeState gives each output tag its safe value.
	SafeState map[string]Value `yaml:"safe_state" doc:"output tag -> value driven on fault or stop"`
}

// Bridge is the general-kernel side's service to SCADA.
type Bridge struct {
	Pos       Pos          `yaml:"-"`
	MQTT      MQTT         `yaml:"mqtt" doc:"MQTT broker connection"`
	Sparkplug Sparkplug    `yaml:"sparkplug" doc:"Sparkplug B edge node"`
	JSON      JSONTopics   `yaml:"json" doc:"plain JSON topics for simple consumers"`
	Modbus    ModbusServer `yaml:"modbus" doc:"Modbus TCP server for SCADA"`
	Metrics   Metrics      `yaml:"metrics" doc:"Prometheus metrics endpoint"`
	Web       Web          `yaml:"web" doc:"web HMI: tags, trends, alarms, latency and audit in a browser"`
	Audit     Audit        `yaml:"audit" doc:"audit log of every write attempt (<state dir>/audit.jsonl): rotation"`
}

// Audit is the rotation of the audit log, <state dir>/audit.jsonl (read
// it with mkrt audit).
type Audit struct {
	Pos     Pos  `yaml:"-"`
	MaxSize Size `yaml:"max_size" doc:"size past which audit.jsonl is rotated to audit.jsonl.1; default 16Mi"`
	Keep    int  `yaml:"keep" doc:"rotated files kept (audit.jsonl.1 … .N, the oldest dropped); default 8"`
}

// Web is the web HMI (package bridge/web). Its users are the MQTT users:
// bridge.mqtt.username (a writer) and bridge.mqtt.users (read_only users
// see, the others write).
type Web struct {
	Pos Pos `yaml:"-"`
	// Listen is the HMI's address; the HMI is off when it is empty.
	Listen string `yaml:"listen" doc:"listen address of the web HMI, e.g. 127.0.0.1:8080; off when empty"`
	TLS    TLS    `yaml:"tls" doc:"serve HTTPS with cert and key (PEM)"`
	// Trend is how much history the trend ring keeps; TrendEvery how
	// often it takes one sample of every tag.
	Trend      Duration `yaml:"trend" doc:"history the trends keep in memory; default 1h"`
	TrendEvery Duration `yaml:"trend_every" doc:"one trend sample of every tag this often; default 1s"`
}

// MQTT is the broker connection.
type MQTT struct {
	Pos Pos `yaml:"-"`
	// Broker is "embedded" (default) or a URL: tcp://, ssl://, ws://, wss://.
	Broker       string   `yaml:"broker" doc:"embedded (default) or a broker URL: tcp://host:1883, ssl://host:8883"`
	Listen       string   `yaml:"listen" doc:"listen address of the embedded broker; default 127.0.0.1:1883"`
	ClientID     string   `yaml:"client_id" doc:"MQTT client id; default mkrt-<node>"`
	Username     string   `yaml:"username" doc:"user name (also a credential of the embedded broker)"`
	Password     string   `yaml:"password" doc:"password; prefer password_file"`
	PasswordFile string   `yaml:"password_file" doc:"file holding the password"`
	Users        []User   `yaml:"users" doc:"further credentials accepted by the embedded broker"`
	TLS          TLS      `yaml:"tls" doc:"TLS settings"`
	QoS          int      `yaml:"qos" doc:"QoS of data messages, 0 or 1; default 1"`
	KeepAlive    Duration `yaml:"keepalive" doc:"keep-alive interval; default 30s"`
	// Limits bound the embedded broker's clients.
	Limits MQTTLimits `yaml:"limits" doc:"limits of the embedded broker's clients"`
	// Store bounds the store-and-forward buffer used while the broker is unreachable.
	Store Store `yaml:"store" doc:"store-and-forward buffer used while the broker is unreachable"`
}

// User is a credential of the embedded broker. Access is denied unless
// granted: without topics a user may subscribe to the node's topics and,
// unless read_only, publish the node's commands.
type User struct {
	Pos      Pos    `yaml:"-"`
	Username string `yaml:"username" required:"true"`
	Password string `yaml:"password" doc:"password; give password or password_file"`
	// PasswordFile holds a bcrypt hash of the password.
	PasswordFile string `yaml:"password_file" doc:"file holding a bcrypt hash of the password (htpasswd -nbB, mosquitto_passwd is not bcrypt)"`
	// ReadOnly users may subscribe but not publish.
	ReadOnly bool `yaml:"read_only" doc:"may subscribe to the node's topics but publish nothing"`
	// PrimaryHost lets the user publish the primary host's Sparkplug STATE.
	PrimaryHost bool       `yaml:"primary_host" doc:"the Sparkplug primary host's user: the only one that may publish spBv1.0/STATE/<sparkplug.primary_host>"`
	Topics      UserTopics `yaml:"topics" doc:"topic filters the user may use, in place of the defaults"`
}

// UserTopics are the topic filters a user is granted; a list given
// replaces the default for its direction.
type UserTopics struct {
	Pos       Pos      `yaml:"-"`
	Publish   []string `yaml:"publish" doc:"topic filters the user may publish to; default the node's command topics (none when read_only)"`
	Subscribe []string `yaml:"subscribe" doc:"topic filters the user may subscribe to; default the node's topics"`
}

// MQTTLimits bound what clients of the embedded broker may cost it.
type MQTTLimits struct {
	Pos            Pos      `yaml:"-"`
	MaxPacket      Size     `yaml:"max_packet" doc:"largest MQTT packet accepted; default 1Mi"`
	MaxClients     int      `yaml:"max_clients" doc:"most connections at once, authenticated or not; default 64"`
	ConnectTimeout Duration `yaml:"connect_timeout" doc:"close a connection that sends no CONNECT within this; default 5s"`
	MaxInflight    int      `yaml:"max_inflight" doc:"most QoS 1 messages in flight per client; default 64"`
	MessageRate    int      `yaml:"message_rate" doc:"publishes per second one client may sustain (the bridge's own are not limited); default 200"`
}

// TLS holds certificate paths.
type TLS struct {
	Pos        Pos    `yaml:"-"`
	CA         string `yaml:"ca" doc:"CA certificate file (PEM)"`
	Cert       string `yaml:"cert" doc:"client/server certificate file (PEM)"`
	Key        string `yaml:"key" doc:"private key file (PEM)"`
	ClientAuth bool   `yaml:"client_auth" doc:"servers: require a client certificate signed by ca"`
}

// Store is the store-and-forward buffer.
type Store struct {
	Pos Pos    `yaml:"-"`
	Dir string `yaml:"dir" doc:"directory of the on-disk buffer; default the state directory"`
	Max Size   `yaml:"max" doc:"largest buffer on disk; default 64Mi"`
}

// Sparkplug is the Sparkplug B edge node identity and reporting.
type Sparkplug struct {
	Pos     Pos    `yaml:"-"`
	Enabled *bool  `yaml:"enabled" doc:"publish Sparkplug B; default true"`
	Group   string `yaml:"group" doc:"Sparkplug group id; default: metadata.site or mkrt"`
	Node    string `yaml:"node" doc:"edge node id; default: metadata.name"`
	// PrimaryHost is the host application id whose STATE gates births.
	PrimaryHost     string   `yaml:"primary_host" doc:"primary host id: wait for spBv1.0/STATE/<id> online before birth"`
	IntegrityPeriod Duration `yaml:"integrity_period" doc:"republish every metric at this period even without change; default 0 (off)"`
}

// JSONTopics is the plain JSON MQTT interface.
type JSONTopics struct {
	Pos     Pos    `yaml:"-"`
	Enabled *bool  `yaml:"enabled" doc:"publish JSON topics; default true"`
	Prefix  string `yaml:"prefix" doc:"topic prefix; default mkrt"`
}

// ModbusServer is the Modbus TCP server for SCADA.
type ModbusServer struct {
	Pos         Pos           `yaml:"-"`
	Listen      string        `yaml:"listen" doc:"listen address, e.g. 127.0.0.1:5020; empty: no Modbus server"`
	MaxClients  int           `yaml:"max_clients" doc:"most concurrent clients; default 16"`
	IdleTimeout Duration      `yaml:"idle_timeout" doc:"close a client idle this long; default 60s"`
	UnitID      int           `yaml:"unit_id" doc:"unit id answered; default 1 (0 answers all)"`
	TLS         TLS           `yaml:"tls" doc:"MBAPS: serve Modbus over TLS with client certificates"`
	Map         []RegisterMap `yaml:"map" doc:"which tags appear at which addresses"`
	// MaxClientsPerAddress keeps one client address from taking every slot.
	MaxClientsPerAddress int `yaml:"max_clients_per_address" doc:"most concurrent connections from one client address; default 4"`
	// WriteAllow: plaintext Modbus is read-only except for these networks.
	WriteAllow []string `yaml:"write_allow" doc:"plaintext clients from these networks (CIDR, e.g. 10.0.0.0/8) may write; default none: plaintext is read-only"`
	// WriteRoles: over MBAPS, the certificate roles that may write.
	WriteRoles     []string             `yaml:"write_roles" doc:"MBAPS: client certificate roles (extension 1.3.6.1.4.1.50316.802.1) that may write, e.g. [operator]; default none: read-only"`
	Identification ModbusIdentification `yaml:"identification" doc:"what Read Device Identification (function 43/14) answers"`
}

// ModbusIdentification is the Modbus server's basic device identification.
type ModbusIdentification struct {
	Pos     Pos    `yaml:"-"`
	Vendor  string `yaml:"vendor" doc:"VendorName; default mkrt"`
	Product string `yaml:"product" doc:"ProductCode; default the Sparkplug node name (metadata.name)"`
	Version string `yaml:"version" doc:"MajorMinorRevision; default mkrt's build version"`
}

// RegisterMap places a tag in the Modbus server's address space.
type RegisterMap struct {
	Pos     Pos          `yaml:"-"`
	Tag     string       `yaml:"tag" doc:"tag name" required:"true"`
	Area    Area         `yaml:"area" doc:"coil, discrete, input or holding" enum:"coil,discrete,input,holding" required:"true"`
	Address int          `yaml:"address" doc:"zero-based address" required:"true"`
	Type    tag.DataType `yaml:"type" doc:"wire type; default: the tag's type"`
	Order   Order        `yaml:"order" doc:"word order; default ABCD" enum:"ABCD,CDAB,BADC,DCBA"`
	Scale   *float64     `yaml:"scale" doc:"raw = (value - offset) / scale; default 1"`
	Offset  float64      `yaml:"offset" doc:"raw = (value - offset) / scale; default 0"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Pos    Pos    `yaml:"-"`
	Listen string `yaml:"listen" doc:"listen address of /metrics, e.g. 127.0.0.1:9102; empty: off"`
}

// Latency is the jitter histogram recording.
type Latency struct {
	Pos Pos `yaml:"-"`
	// Highest is the largest latency the histograms track.
	Highest Duration `yaml:"highest" doc:"largest latency tracked; default 100ms"`
	// Digits is HdrHistogram's number of significant value digits.
	Digits   int      `yaml:"digits" doc:"significant value digits, 1-5; default 3"`
	Interval Duration `yaml:"interval" doc:"interval of the histogram log; default 10s"`
	Log      string   `yaml:"log" doc:"path of an HdrHistogram interval log to write; empty: none"`
}
