package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
)

// Record is what a later supervisor needs to adopt a running guest (QEMU
// outlives the supervisor that started it): QEMU's identity, its sockets
// and the tap made for it.
type Record struct {
	PID    int    `json:"pid"`
	Start  uint64 `json:"start"`
	BootID string `json:"boot_id"`
	QMP    string `json:"qmp"`
	Events string `json:"events"`
	// Accel is the accelerator the guest runs with.
	Accel string `json:"accel"`
	// Info is what the start achieved (for status).
	Info supervisor.Info `json:"info"`
}

var _ supervisor.Adopter = (*VM)(nil)

// Record is the running guest's Record, as JSON (supervisor.Adopter).
func (v *VM) Record() (json.RawMessage, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pid == 0 || v.info.PID == 0 {
		return nil, fmt.Errorf("vm: partition %s: no guest runs", v.o.Name)
	}
	return json.Marshal(Record{PID: v.pid, Start: v.start, BootID: supervisor.BootID(os.ReadFile, "/proc"),
		QMP: v.qemu.QMP, Events: v.qemu.Events, Accel: v.qemu.Accel, Info: v.info.Clone()})
}

// alive says whether the QEMU r records still runs.
func alive(r Record) error {
	if r.PID <= 0 {
		return fmt.Errorf("%w: no pid recorded", supervisor.ErrGone)
	}
	if b := supervisor.BootID(os.ReadFile, "/proc"); r.BootID != "" && b != "" && b != r.BootID {
		return fmt.Errorf("%w: qemu pid %d ran in an earlier boot", supervisor.ErrGone, r.PID)
	}
	start, err := supervisor.ProcessStart("/proc", r.PID)
	if err != nil {
		return fmt.Errorf("%w: qemu pid %d: %v", supervisor.ErrGone, r.PID, err)
	}
	if start != r.Start {
		return fmt.Errorf("%w: pid %d is another process now", supervisor.ErrGone, r.PID)
	}
	return nil
}

// Adopt takes over the running guest rec describes (supervisor.Adopter):
// Wait returns when QEMU ends or the guest's watchdog fires (its event
// socket is listened to again), Stop halts the guest and quits QEMU, and
// the tap made for it is deleted on Stop.
func (v *VM) Adopt(rec json.RawMessage) error {
	r, err := decode(rec)
	if err != nil {
		return err
	}
	if err := alive(r); err != nil {
		return err
	}
	err = v.life.Adopt(func() ([]supervisor.Step, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.qemu = v.o.QEMU
		v.qemu.QMP, v.qemu.Events, v.qemu.Accel = r.QMP, r.Events, r.Accel
		v.o.QEMU.QMP, v.o.QEMU.Events = r.QMP, r.Events
		v.pid, v.start, v.info = r.PID, r.Start, r.Info.Clone()
		v.info.PID = r.PID
		if v.info.CPUs == "" {
			v.info.CPUs = configs.CPUList(v.o.HostCPUs).String()
		}
		return v.Steps(), nil
	})
	if err != nil {
		return err
	}
	proc, err := v.watchAdopted(r.PID)
	if err != nil {
		return err
	}
	from := int64(0)
	if fi, err := os.Stat(v.o.ConsoleFile); err == nil {
		from = fi.Size()
	}
	v.running(proc, r.Events, from)
	v.log.Info("guest adopted", "qemu", r.PID, "accel", r.Accel)
	return nil
}

// Reclaim deletes what a dead QEMU left (its tap, its sockets); it refuses
// while QEMU runs (supervisor.Adopter).
func (v *VM) Reclaim(ctx context.Context, rec json.RawMessage) error {
	r, err := decode(rec)
	if err != nil {
		return err
	}
	if alive(r) == nil {
		return fmt.Errorf("vm: partition %s: qemu %d still runs; stop it or adopt it", v.o.Name, r.PID)
	}
	os.Remove(r.QMP)
	os.Remove(r.Events)
	return v.deleteTap(ctx)
}

func (v *VM) watchAdopted(pid int) (*supervisor.Ending, error) {
	e, err := supervisor.WatchEnding(pid, func() supervisor.Exit {
		v.mu.Lock()
		v.info.PID = 0
		v.mu.Unlock()
		return supervisor.Exit{Code: -1, Signal: "ended (adopted: its exit status is known only to its parent)", Time: v.o.Clock.Now()}
	})
	if err != nil {
		return nil, fmt.Errorf("vm: watch adopted qemu %d: %w", pid, err)
	}
	return e, nil
}

func decode(rec json.RawMessage) (Record, error) {
	var r Record
	if err := json.Unmarshal(rec, &r); err != nil {
		return r, fmt.Errorf("vm: bad record: %w", err)
	}
	return r, nil
}
