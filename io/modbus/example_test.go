package modbus_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus"
	"github.com/mkrt/mkrt/shm/tag"
)

// The executive builds one Scanner per device, starts them off the RT
// thread, and in every cycle takes the inputs and hands back the outputs.
func Example() {
	cfg := &configs.Config{Devices: []configs.Device{{
		Name: "tank", Driver: configs.DriverModbusTCP, Address: "127.0.0.1:15020",
		Poll: configs.Duration(20 * time.Millisecond), Timeout: configs.Duration(200 * time.Millisecond),
		Tags: []configs.IOTag{
			{Name: "level", Area: configs.AreaInput, Address: 0, Type: tag.Float32},
			{Name: "inflow_valve", Area: configs.AreaHolding, Address: 0, Type: tag.Float32},
			{Name: "pump_running", Area: configs.AreaCoil, Address: 0},
		},
	}}}
	tab, err := cfg.TagTable()
	if err != nil {
		panic(err)
	}
	s, err := modbus.NewScanner(cfg.Devices[0], tab, modbus.WithLogger(slog.Default()))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer s.Stop()

	level, _ := tab.Lookup("level")
	valve, _ := tab.Lookup("inflow_valve")
	for cycle := 0; cycle < 10; cycle++ {
		s.Latest(tab.Samples, tab.Text) // inputs: values, quality, timestamps
		if tab.Samples[level].Quality == tag.Good && tab.Samples[level].Value < 1.5 {
			tab.Samples[valve].Value = 80 // the control program's output
		}
		s.SetOutputs(tab.Samples, tab.Text) // written by the scanner's goroutine
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	fmt.Println(st.Polls, st.Errors, st.LastError)
}
