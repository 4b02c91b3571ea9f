package process

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
)

// consoleFile is where the program's output goes: <state dir>/<instance>.console.
func consoleFile(spec supervisor.Spec) string {
	if spec.StateDir == "" {
		return ""
	}
	return filepath.Join(spec.StateDir, spec.Instance+".console")
}

// FromConfig builds the process partition of one generation: the
// executive runs as `mkrt executive` (spec.Executable, else this binary)
// on the config file and the region, on the partition's CPUs at the
// highest task priority, with the partition's NICs; a hand-over's standby
// start also gets --take-from.
func FromConfig(spec supervisor.Spec) (*Partition, error) {
	cfg := spec.Config
	exe := spec.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("process: finding the mkrt binary: %w", err)
		}
	}
	cfgPath, err := filepath.Abs(spec.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	var nics []NIC
	for _, n := range cfg.Partition.NICs {
		nics = append(nics, NIC{Interface: n.Interface, PCI: n.PCI, Address: n.Address, Gateway: n.Gateway})
	}
	prio := 0
	for _, t := range cfg.Tasks {
		prio = max(prio, t.Priority)
	}
	// --backend: the executive must see the same config (and hash) as this
	// side, which may run the file on another backend than it names.
	backend := cfg.Partition.Backend
	if backend == "" {
		backend = configs.BackendProcess
	}
	args := []string{exe, "executive", "--config", cfgPath, "--shm", spec.Region, "--backend", string(backend)}
	if spec.TakeFrom != "" {
		args = append(args, "--take-from", spec.TakeFrom) // start on standby (hand-over)
	}
	log := spec.Log
	if log != nil {
		log = log.With("component", "process")
	}
	return New(Config{
		Name:    spec.Instance,
		Command: args,
		// Go's asynchronous preemption signals show up in the latency tail;
		// the runtime reads this only at start.
		Env:      []string{"GODEBUG=asyncpreemptoff=1"},
		CPUs:     cfg.Partition.CPUs,
		Priority: prio,
		NICs:     nics,
		Log:      log,
		// A file, not a pipe: the program outlives this supervisor.
		ConsoleFile: consoleFile(spec),
	})
}
