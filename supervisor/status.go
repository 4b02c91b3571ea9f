package supervisor

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
)

// State is where a partition is in its life, as the supervisor sees it.
type State uint8

// The partition states.
const (
	Stopped    State = iota // not running (before Run, after Stop)
	Preparing               // host preparation steps are running
	Starting                // started, waiting for the first heartbeat
	Running                 // heartbeats arrive
	Faulted                 // missed heartbeats, exited or reported a fault
	Restarting              // waiting out the backoff before the next start
	CrashLoop               // restarted too often; waiting for an operator reset
	Stopping                // Stop is undoing the partition
)

var stateNames = [...]string{"stopped", "preparing", "starting", "running", "faulted", "restarting", "crashloop", "stopping"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("supervisor: unknown partition state %q", b)
}

// Heartbeat is the executive's liveness signal: its cycle counter and state.
// The shared-memory reader implements it; Read must not block.
type Heartbeat interface {
	Read() (cycle uint64, state wire.State, err error)
}

// Fault is why a partition was last declared faulted.
type Fault struct {
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Status is everything `mkrt status` shows about a partition.
type Status struct {
	Partition string     `json:"partition"`
	Backend   string     `json:"backend"`
	State     State      `json:"state"`
	Exec      wire.State `json:"exec_state"`
	PID       int        `json:"pid,omitempty"`
	RT        bool       `json:"rt"`
	RTWhy     string     `json:"rt_why,omitempty"`
	Isolation Isolation  `json:"isolation"`
	Restarts  int        `json:"restarts"`
	Outputs   Outputs    `json:"outputs,omitzero"`
	LastFault *Fault     `json:"last_fault,omitempty"`
	Cycle     uint64     `json:"cycle"`
	// Since is when the partition last entered Running; Uptime is measured from it.
	Since  time.Time     `json:"since,omitzero"`
	Uptime time.Duration `json:"uptime"`
	Tasks  []TaskStats   `json:"tasks,omitempty"`
	Links  []Link        `json:"links,omitempty"`
	// HandOver is the last hand-over to a new generation of the partition
	// (mkrt apply of a structural change); nil before the first.
	HandOver *HandOver `json:"hand_over,omitempty"`
}

// Outputs says who drives the partition's outputs now.
type Outputs struct {
	// Driver is "partition" (its control program runs), "supervisor" (the
	// partition is down and this side drove the safe state), "devices"
	// (down; the field devices' own watchdogs hold them) or "unknown".
	Driver string `json:"driver,omitempty"`
	// Safe is true once the safe state was driven (Driver "supervisor").
	Safe   bool      `json:"safe,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

// HandOver is how the running generation of a partition took the outputs
// over from the one before it.
type HandOver struct {
	// Generation counts the partition's generations: 1 is the one mkrt run
	// started, each hand-over adds one.
	Generation int `json:"generation"`
	// Cycle is the first cycle the generation drove (numbered on the
	// running partition's cycle counter); the one before drove up to Cycle-1.
	Cycle uint64    `json:"cycle"`
	Time  time.Time `json:"time"`
	// Missed counts cycles neither generation drove; Retries cycles the new
	// one found no state offered yet (the old one kept driving them).
	Missed  uint64 `json:"missed"`
	Retries uint64 `json:"retries"`
	// How the blocks' state carried over: blocks whose state carried over,
	// new blocks that started fresh, and blocks of the old program left out.
	wire.BlockCounts

	// Took is the time from the apply request to the confirmed switch.
	Took time.Duration `json:"took"`
	// Mode and Driven are the running generation's hand-over counters now:
	// its mode ("driving") and the cycles it drove since the switch.
	Mode   wire.HandOverMode `json:"mode"`
	Driven uint64            `json:"driven"`
	// CPUs the generation runs on.
	CPUs string `json:"cpus,omitempty"`
}

// TaskStats is one cyclic task's timing, from the executive's histograms.
type TaskStats struct {
	Name     string        `json:"name"`
	Period   time.Duration `json:"period"`
	Cycles   uint64        `json:"cycles"`
	Overruns uint64        `json:"overruns"`
	// Latency percentiles of the wake-up latency.
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// Link is one connection of the bridge (MQTT broker, Modbus client, ...).
type Link struct {
	Name      string `json:"name"`
	Peer      string `json:"peer,omitempty"`
	Connected bool   `json:"connected"`
	Detail    string `json:"detail,omitempty"`
}

// TaskSource reports per-task timing (the histogram reader implements it).
type TaskSource interface {
	TaskStats() []TaskStats
}

// LinkSource reports the bridge's connections (the bridge implements it).
type LinkSource interface {
	Links() []Link
}

// String is a one-line summary for logs.
func (s Status) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}
