package modbus

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// TestRTUSerial polls libmodbus's RTU server over a serial line at 19200
// 8E1: a pseudo-terminal pair made by socat stands in for an RS-485
// adapter. (Debian 12's pymodbus 3.0.0rc1 serial server does not answer
// on a pty, so the independent peer here is libmodbus.)
func TestRTUSerial(t *testing.T) {
	tty := rtuSerialServer(t)
	tags, want := knownTags()
	dev := configs.Device{Name: "rtu", Driver: configs.DriverModbusRTU, Address: tty, Timeout: configs.Duration(time.Second),
		Poll: configs.Duration(20 * time.Millisecond), Serial: configs.Serial{BaudRate: 19200, Parity: "E"}, Tags: tags}
	tab := newTable(t, dev)
	checkKnown(t, startScanner(t, dev, tab), tab, want)
}

// rtuSerialServer runs libmodbus's RTU server (unit 1, 19200 8E1, holding
// the knownRegisters) on one end of a socat pty pair and returns the path
// of the other end.
func rtuSerialServer(t *testing.T) string {
	t.Helper()
	srv := buildC(t, t.TempDir(), "server")
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("skipping: socat not installed (Debian package socat) to make a serial line from a pty pair")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "ttyA"), filepath.Join(dir, "ttyB")
	ctx, cancel := context.WithCancel(context.Background())
	socat := exec.CommandContext(ctx, "socat", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := socat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = socat.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socat did not create the pty pair")
		}
	}
	regs := []string{"rtu", a}
	for _, r := range knownRegisters {
		regs = append(regs, strconv.Itoa(int(r)))
	}
	cmd := exec.Command(srv, regs...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return b
}
