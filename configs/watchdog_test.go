package configs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// watchdogDevice is a device with a float32 at holding 0-1 and a coil 0,
// whose watchdog block (written from line 10, indented six spaces) is wd.
func watchdogDevice(wd string) string {
	return header + "devices:\n  - name: d\n    driver: modbus-tcp\n    address: 127.0.0.1:5020\n    tags:\n" +
		"      - {name: v, area: holding, address: 0, type: float32}\n      - {name: c, area: coil, address: 0}\n    watchdog:\n" + wd
}

func TestValidateDeviceWatchdog(t *testing.T) {
	cases := []struct {
		name string
		wd   string
		want []problem
	}{
		{"WAGO-like, defaults", "      timeout: 1s\n      timeout_register: {address: 4096}\n      timeout_unit: 100ms\n      keepalive_register: {address: 4097}\n", nil},
		{"keep-alive on a coil", "      timeout: 1s\n      keepalive_register: {area: coil, address: 9}\n", nil},
		{"fed by the polls", "      timeout: 1s\n      timeout_register: {address: 4096}\n", nil},
		{"missing timeout", "      timeout_register: {address: 4096}\n", []problem{{"10:7", "missing timeout"}}},
		{"registers over tags", "      timeout: 1s\n      timeout_register: {address: 1}\n      keepalive_register: {area: coil, address: 0}\n",
			[]problem{{"11:35", "watchdog.timeout_register (holding 1) overlaps tag v (holding 0-1)"}, {"12:49", "watchdog.keepalive_register (coil 0) overlaps tag c (coil 0)"}}},
		{"read-only areas", "      timeout: 1s\n      timeout_register: {area: input, address: 4096}\n      keepalive_register: {area: discrete, address: 4097}\n",
			[]problem{{"11:32", "timeout_register: an input register is read-only"}, {"12:34", "keepalive_register: a discrete input is read-only"}}},
		{"timeout in a coil", "      timeout: 1s\n      timeout_register: {area: coil, address: 4096}\n", []problem{{"11:32", "a coil holds one bit, not a timeout"}}},
		{"not whole steps", "      timeout: 250ms\n      timeout_register: {address: 4096}\n      timeout_unit: 100ms\n",
			[]problem{{"12:21", "timeout 250ms is not a whole number of timeout_unit 100ms; write 200ms or 300ms"}}},
		{"too many steps", "      timeout: 100s\n      timeout_register: {address: 4096}\n", []problem{{"10:16", "100000 steps of 1ms, outside the register's 1-65535"}}},
		{"keep-alive as slow as the timeout", "      timeout: 1s\n      keepalive_register: {address: 4097}\n      keepalive_every: 1s\n",
			[]problem{{"12:24", "keepalive_every 1s is not shorter than timeout 1s"}}},
		{"keep-alive keys without a register", "      timeout: 1s\n      keepalive_every: 100ms\n      keepalive_value: toggle\n      timeout_unit: 10ms\n",
			[]problem{{"11:24", "keepalive_every needs keepalive_register"}, {"12:24", "keepalive_value needs keepalive_register"}, {"13:21", "timeout_unit is the step of timeout_register"}}},
		{"polls slower than the timeout", "      timeout: 50ms\n", []problem{{"10:16", "poll 100ms is not shorter than timeout 50ms"}}},
		{"incrementing a coil", "      timeout: 1s\n      keepalive_register: {area: coil, address: 9}\n      keepalive_value: increment\n",
			[]problem{{"12:24", "its keep-alive toggles"}}},
		{"one register for both", "      timeout: 1s\n      timeout_register: {address: 9}\n      keepalive_register: {address: 9}\n",
			[]problem{{"12:37", "timeout_register and keepalive_register are both holding 9"}}},
		{"register without address", "      timeout: 1s\n      timeout_register: {}\n", []problem{{"11:25", "missing address"}}},
		{"address and value", "      {timeout: 1s, timeout_register: {address: 70000}, keepalive_register: {address: 4097}, keepalive_value: flip}\n",
			[]problem{{"10:49", "address 70000 is outside 0-65535"}, {"10:111", `unknown keepalive_value "flip"`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := watchdogDevice(c.wd)
			expect(t, src, loadErrors(t, "testdata/x.yaml", src), c.want)
		})
	}
}

func TestDeviceWatchdogDefaults(t *testing.T) {
	c, err := configs.LoadBytes("d.yaml", []byte(watchdogDevice("      timeout: 1s\n      timeout_register: {address: 4096}\n      keepalive_register: {address: 4097}\n")))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Devices[0].Watchdog
	if w.TimeoutRegister.Area != configs.AreaHolding || w.KeepAliveRegister.Area != configs.AreaHolding || w.TimeoutUnit.D() != time.Millisecond ||
		w.KeepAliveEvery.D() != 333*time.Millisecond || w.KeepAliveValue != configs.KeepAliveIncrement {
		t.Errorf("defaults %+v %+v %+v", w, *w.TimeoutRegister, *w.KeepAliveRegister)
	}
	if n, err := w.Steps(); n != 1000 || err != nil {
		t.Errorf("steps %d %v, want 1000 ms", n, err)
	}
	// The getters give the defaults without Defaults (a config built in code).
	coil := configs.DeviceWatchdog{Timeout: configs.Duration(300 * time.Millisecond), TimeoutUnit: configs.Duration(100 * time.Millisecond),
		KeepAliveRegister: &configs.WatchdogRegister{Area: configs.AreaCoil, Address: 3}}
	if n, _ := coil.Steps(); n != 3 || coil.KeepAlivePeriod() != 100*time.Millisecond || coil.KeepAliveMode() != configs.KeepAliveToggle {
		t.Errorf("coil watchdog: steps %d every %v mode %s", n, coil.KeepAlivePeriod(), coil.KeepAliveMode())
	}
	// No watchdog: nothing is filled in, nothing is encoded.
	c, err = configs.LoadBytes("d.yaml", []byte(header+"devices:\n  - {name: d, driver: modbus-tcp, address: \"h:1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Devices[0].Watchdog; w.Enabled() || w.TimeoutUnit != 0 || w.KeepAliveEvery != 0 {
		t.Errorf("device without a watchdog: %+v", w)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "timeout_register") || strings.Contains(string(out), "keepalive_") || strings.Contains(string(out), "timeout_unit") {
		t.Errorf("a device without a watchdog marshals one:\n%s", out)
	}
}
