package sim

import (
	"errors"
	"io"
	"log"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
)

// serveModel serves m (advancing only by Step) and opens a Modbus TCP
// client of it; both are closed at cleanup.
func serveModel(t *testing.T, m Model) (*Server, *mb.ModbusClient) {
	t.Helper()
	srv, err := Start(t.Context(), m, Config{Listen: "127.0.0.1:0", Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + srv.Addr(), Timeout: 2 * time.Second, Logger: log.New(io.Discard, "", 0)})
	if err == nil {
		err = c.Open()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// waitUntil polls cond every 5 ms for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10 s", what)
}

// TestWatchdogDrivesTankSafe arms the tank's watchdog, keeps it fed, stops
// feeding it, and checks over Modbus that the tank goes safe, refuses
// output writes while communication is lost, and resumes after a keep-alive
// with its outputs still safe.
func TestWatchdogDrivesTankSafe(t *testing.T) {
	srv, c := serveModel(t, NewTank())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.WriteFloat32(0, 60))
	must(c.WriteFloat32(2, 40))
	must(c.WriteCoil(0, true))
	// Off by default: nothing happens without a timeout.
	if st := srv.Watchdog(); st.Timeout != 0 || st.CommLost {
		t.Fatalf("watchdog at start %+v", st)
	}
	must(c.WriteRegister(WatchdogTimeoutRegister, 3)) // 300 ms
	if v, err := c.ReadRegisters(WatchdogTimeoutRegister, 2, mb.HOLDING_REGISTER); err != nil || v[0] != 3 {
		t.Fatalf("timeout register reads %v %v", v, err)
	}
	var fed time.Time
	for i := 0; i < 12; i++ { // 600 ms of keep-alives every 50 ms
		time.Sleep(50 * time.Millisecond)
		must(c.WriteRegister(WatchdogKeepAliveRegister, uint16(i+1)))
		fed = time.Now()
	}
	if lost, err := c.ReadDiscreteInput(WatchdogCommLost); err != nil || lost {
		t.Fatalf("comm lost %v (%v) while fed", lost, err)
	}
	waitUntil(t, "comm lost", func() bool {
		lost, err := c.ReadDiscreteInput(WatchdogCommLost)
		return err == nil && lost
	})
	since := time.Since(fed)
	t.Logf("comm lost seen %v after the last keep-alive (timeout 300ms)", since)
	if since < 300*time.Millisecond {
		t.Errorf("comm lost %v after the last keep-alive, before the 300ms timeout", since)
	}
	valve, _ := c.ReadFloat32(0, mb.HOLDING_REGISTER)
	outlet, _ := c.ReadFloat32(2, mb.HOLDING_REGISTER)
	pump, _ := c.ReadCoil(0)
	trips, _ := c.ReadRegister(WatchdogTrips, mb.INPUT_REGISTER)
	if valve != 0 || outlet != 40 || pump || trips != 1 {
		t.Errorf("after comm loss: inflow valve %v (want 0), outflow valve %v (want 40, held), pump %v (want off), trips %d (want 1)", valve, outlet, pump, trips)
	}
	if err := c.WriteFloat32(0, 50); !errors.Is(err, mb.ErrServerDeviceFailure) {
		t.Errorf("output write while comm lost: %v, want exception 4 (server device failure)", err)
	}
	if err := c.WriteCoil(0, true); !errors.Is(err, mb.ErrServerDeviceFailure) {
		t.Errorf("coil write while comm lost: %v, want exception 4", err)
	}
	// A keep-alive resumes: comm lost clears, the outputs stay safe until written.
	must(c.WriteRegister(WatchdogKeepAliveRegister, 99))
	if st := srv.Watchdog(); st.CommLost || st.KeepAlive != 99 || st.Trips != 1 {
		t.Errorf("after a keep-alive: %+v", st)
	}
	if valve, _ := c.ReadFloat32(0, mb.HOLDING_REGISTER); valve != 0 {
		t.Errorf("inflow valve %v after the keep-alive, want still 0", valve)
	}
	must(c.WriteFloat32(0, 25))
	// Timeout 0 turns it off: no expiry however long it waits.
	must(c.WriteRegister(WatchdogTimeoutRegister, 0))
	time.Sleep(400 * time.Millisecond)
	if st := srv.Watchdog(); st.CommLost || st.Trips != 1 || st.Timeout != 0 {
		t.Errorf("watchdog off: %+v", st)
	}
}

func TestWatchdogAddresses(t *testing.T) {
	srv, c := serveModel(t, NewConveyor())
	// The watchdog block is the watchdog's only: a request straddling it
	// and the model's areas is an illegal address, as is one past it.
	if _, err := c.ReadRegisters(WatchdogTimeoutRegister-1, 2, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Errorf("read holding 4095+2: %v", err)
	}
	if _, err := c.ReadRegisters(WatchdogTimeoutRegister, 3, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Errorf("read holding 4096+3: %v", err)
	}
	if _, err := c.ReadDiscreteInputs(WatchdogCommLost, 2); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Errorf("read discrete 4096+2: %v", err)
	}
	// Both registers in one FC16.
	if err := c.WriteRegisters(WatchdogTimeoutRegister, []uint16{50, 7}); err != nil {
		t.Fatal(err)
	}
	if st := srv.Watchdog(); st.Timeout != 5*time.Second || st.KeepAlive != 7 {
		t.Errorf("after FC16 of both: %+v", st)
	}
	if n, err := c.ReadRegister(WatchdogTrips, mb.INPUT_REGISTER); err != nil || n != 0 {
		t.Errorf("trips %d %v", n, err)
	}
}

// TestSafeValues checks every model's safe outputs.
func TestSafeValues(t *testing.T) {
	for _, name := range Names() {
		m, _ := New(name)
		b := m.NewBank()
		b.Update(func(mem *Memory) {
			for i := range mem.Coils {
				mem.Coils[i] = true
			}
			for a := 0; a+1 < len(mem.Holding); a += 2 {
				PutFloat32(mem.Holding, a, 42)
			}
			m.Safe(mem)
		})
		mem := b.Snapshot()
		switch name {
		case "tank":
			if mem.Coils[0] || Float32(mem.Holding, 0) != 0 || Float32(mem.Holding, 2) != 42 {
				t.Errorf("tank safe: pump %v, inflow %v, outflow %v", mem.Coils[0], Float32(mem.Holding, 0), Float32(mem.Holding, 2))
			}
		case "heater":
			if mem.Coils[0] || Float32(mem.Holding, 0) != 0 {
				t.Errorf("heater safe: enable %v, power %v", mem.Coils[0], Float32(mem.Holding, 0))
			}
		case "conveyor":
			if mem.Coils[0] || mem.Coils[1] || !mem.Coils[8] {
				t.Errorf("conveyor safe: run %v, reverse %v, e-stop button %v (kept)", mem.Coils[0], mem.Coils[1], mem.Coils[8])
			}
		}
	}
}
