package modbusserver_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/modbusserver"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

const (
	benchClients = 8
	benchRegs    = 100
)

// BenchmarkModbusThroughput: 8 concurrent clients each reading 100 holding
// registers, against this server, a libmodbus C server and a pymodbus
// server serving the same map in the same run. Reported as requests/s.
func BenchmarkModbusThroughput(b *testing.B) {
	b.Run("mkrt", func(b *testing.B) {
		cfg := &configs.Config{}
		var m []configs.RegisterMap
		for i := 0; i < 200; i++ {
			name := fmt.Sprintf("r%d", i)
			cfg.Tags = append(cfg.Tags, configs.Tag{Name: name, Type: tag.Uint16, Initial: configs.Value{Raw: strconv.Itoa(i), Set: true}})
			m = append(m, configs.RegisterMap{Tag: name, Area: configs.AreaHolding, Address: i})
		}
		p, _ := bridgetest.NewPlantFromConfig(cfg, 0)
		port := bridgetest.FreePort(b)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s, err := modbusserver.New(modbusserver.Config{Listen: addr, Map: m, MaxClients: 32, MaxClientsPerAddress: benchClients}, p)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		waitListening(b, addr)
		hammer(b, addr)
	})
	b.Run("libmodbus", func(b *testing.B) {
		cc, err := exec.LookPath("cc")
		if err != nil {
			b.Skip("no C compiler: libmodbus reference skipped")
		}
		if _, err := os.Stat("/usr/include/modbus/modbus.h"); err != nil {
			b.Skip("libmodbus-dev not installed: libmodbus reference skipped")
		}
		bin := filepath.Join(b.TempDir(), "libmodbus_server")
		if out, err := exec.Command(cc, "-O2", "-I/usr/include/modbus", "-o", bin, "testdata/libmodbus_server.c", "-lmodbus").CombinedOutput(); err != nil {
			b.Fatalf("compile: %v\n%s", err, out)
		}
		runPeer(b, exec.Command(bin))
	})
	b.Run("pymodbus", func(b *testing.B) {
		if err := exec.Command("/usr/bin/python3", "-c", "import pymodbus.server").Run(); err != nil {
			b.Skip("python3-pymodbus not installed: pymodbus reference skipped")
		}
		runPeer(b, exec.Command("/usr/bin/python3", "testdata/pymodbus_server.py"))
	})
}

// runPeer starts a reference server on a free port (appended to its
// arguments) and hammers it.
func runPeer(b *testing.B, cmd *exec.Cmd) {
	port := bridgetest.FreePort(b)
	cmd.Args = append(cmd.Args, strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitListening(b, addr)
	hammer(b, addr)
}

func hammer(b *testing.B, addr string) {
	var clients []*modbus.ModbusClient
	for i := 0; i < benchClients; i++ {
		c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Open(); err != nil {
			b.Fatal(err)
		}
		c.SetUnitId(1)
		defer c.Close()
		// warm up (pymodbus answers its first request slowly)
		if _, err := c.ReadRegisters(0, benchRegs, modbus.HOLDING_REGISTER); err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchClients)
	for i, c := range clients {
		n := b.N / benchClients
		if i < b.N%benchClients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < n; k++ {
				regs, err := c.ReadRegisters(0, benchRegs, modbus.HOLDING_REGISTER)
				if err != nil || regs[99] != 99 {
					errs <- fmt.Errorf("read: %v %v", err, regs)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
}
