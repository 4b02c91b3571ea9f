package process_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
)

// The test binary doubles as a fake executive: with MKRT_FAKE_EXEC set it
// beats a heartbeat file (MKRT_HB) every millisecond and behaves as told:
//
//	run          beat until SIGTERM, then exit 0
//	crash        beat 20 times, then exit 3
//	hang         beat 5 times, then stop beating but keep running
//	config       exit 125 (do not restart) at once
//	ignore-term  beat and ignore SIGTERM
//	spawn        start a grandchild (sleep) in the same group, write its pid to MKRT_PIDFILE, then run
func TestMain(m *testing.M) {
	if mode := os.Getenv("MKRT_FAKE_EXEC"); mode != "" {
		os.Exit(fakeExecutive(mode))
	}
	os.Exit(m.Run())
}

func fakeExecutive(mode string) int {
	fmt.Println("fake executive", mode, "pid", os.Getpid(), "cpus", os.Getenv("MKRT_CPUS"))
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	switch mode {
	case "config":
		fmt.Fprintln(os.Stderr, "config error: tag x: unknown type")
		return supervisor.ExitDoNotRestart
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "spawn":
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			return 4
		}
		os.WriteFile(os.Getenv("MKRT_PIDFILE"), []byte(strconv.Itoa(c.Process.Pid)), 0o644)
	}
	hb := os.Getenv("MKRT_HB")
	var buf [8]byte
	tick := time.NewTicker(time.Millisecond)
	for cycle := uint64(1); ; cycle++ {
		if !(mode == "hang" && cycle > 5) {
			binary.LittleEndian.PutUint64(buf[:], cycle)
			// Write in place (one pwrite): readers never see a missing file.
			if f, err := os.OpenFile(hb, os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
				f.WriteAt(buf[:], 0)
				f.Close()
			}
		}
		if mode == "crash" && cycle == 20 {
			return 3
		}
		select {
		case <-term:
			fmt.Println("terminating at cycle", cycle)
			return 0
		case <-tick.C:
		}
	}
}

// fileHeartbeat reads the fake executive's heartbeat file.
type fileHeartbeat string

func (f fileHeartbeat) Read() (uint64, wire.State, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return 0, wire.Booting, err
	}
	if len(b) < 8 {
		return 0, wire.Booting, errors.New("short heartbeat")
	}
	return binary.LittleEndian.Uint64(b), wire.Running, nil
}

// fakeCommand is the argv and env running this test binary as a fake executive.
func fakeCommand(t *testing.T, mode string) ([]string, []string, fileHeartbeat) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hb := fileHeartbeat(t.TempDir() + "/hb")
	return []string{exe, "-test.run=^$"}, []string{"MKRT_FAKE_EXEC=" + mode, "MKRT_HB=" + string(hb)}, hb
}
