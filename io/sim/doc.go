// Package sim is a set of plant simulators served as real Modbus TCP slaves,
// for trying control configs and testing the field I/O drivers without a
// plant: a tank, a heater, a conveyor, a batch mixer (Mixer), a pump
// station's wet well (Pumps) and a blending line (Blending). Each advances
// on a ticker in sim time (wall time multiplied by a speed factor) and
// keeps its state in the Modbus data areas; each model's type documents its
// register map. Servers use github.com/simonvetter/modbus; nothing here
// needs privileges. `mkrt sim <tank|heater|conveyor|mixer|pumps|blending>
// --listen ADDR [--speed N]` runs one.
//
// Addresses below are zero-based (mbpoll's -r is one-based: register 0 is
// -r 1). float32 values take two registers, ABCD order (big-endian, high word
// first). Every unit id is answered. Reading or writing outside the areas
// listed answers exception 2 (illegal data address).
//
// # Comm-loss watchdog (every model)
//
// Like a remote-I/O coupler (the WAGO 750-352 keeps its watchdog time in
// 100 ms steps at holding 0x1000), every simulator has a comm-loss
// watchdog at the same addresses:
//
//	holding  4096  uint16   watchdog timeout in 100 ms steps; 0 (default) off
//	holding  4097  uint16   keep-alive: any write restarts the timeout (reads back the value)
//	discrete 4096           comm lost: the timeout passed without a keep-alive
//	input    4096  uint16   watchdog expiries since start (wraps)
//
// Writing a non-zero timeout starts the watchdog. When the timeout passes
// without a write to the keep-alive (or timeout) register, the simulator
// drives its outputs to their safe values (listed with each model), sets
// comm lost, and answers every write other than to these two registers
// with exception 4 (server device failure); reads go on. The next
// keep-alive clears comm lost and accepts writes again; the outputs stay at
// their safe values until written. Only keep-alive writes feed the
// watchdog, not polls. The timeout runs in wall time, whatever --speed.
// In mkrt's config (timeout 1s, keep-alive every 250ms):
//
//	watchdog:
//	  timeout: 1s
//	  timeout_register: {area: holding, address: 4096}
//	  timeout_unit: 100ms
//	  keepalive_register: {area: holding, address: 4097}
//	  keepalive_every: 250ms
//
// # Tank (default 127.0.0.1:15020)
//
// A vertical tank of 2 m² cross-section and 3 m height. A pump feeds it
// through an inflow valve, at most 10 m³/h with the valve fully open; it
// drains by gravity through an outflow valve, outflow = 8 m³/h · valve/100 ·
// sqrt(level/m). With the pump on and both valves at 50 % the level settles
// at 1.5625 m. The level starts at 1 m and is clamped to 0-3 m (overflow).
//
//	input    0-1  float32  level, m
//	input    2-3  float32  outflow, m³/h
//	input    4-5  float32  inflow, m³/h
//	holding  0-1  float32  inflow valve position, % (0-100, default 0)
//	holding  2-3  float32  outflow valve position, % (0-100, default 50)
//	coil     0             pump running (default off)
//	discrete 0             high-level switch: level >= 2.7 m
//	discrete 1             low-level switch: level <= 0.3 m
//
// Safe values on comm loss: pump off, inflow valve 0 %; the outflow valve
// keeps its position (the tank cannot overflow and may still drain).
//
// # Heater (default 127.0.0.1:15030)
//
// A first-order thermal process with dead time: ambient 20 °C, gain
// 0.8 °C per % of heater power (100 % settles at 100 °C), time constant
// 120 s, dead time 10 s. The heater only heats while enabled.
//
//	input    0-1  float32  temperature, °C
//	input    2-3  float32  heater power applied (after enable), %
//	holding  0-1  float32  heater power, % (0-100, default 0)
//	coil     0             enable (default off)
//
// Safe values on comm loss: enable off, heater power 0 %.
//
// # Conveyor (default 127.0.0.1:15040)
//
// A 5 m belt at 0.5 m/s. While the motor runs forward a new 0.3 m item is
// loaded at the infeed every 1.5 m of belt travel; items leaving the far end
// are counted. Photo-eyes sit at 0.5 m (eye_in) and 4.5 m (eye_out) and see
// an item covering them. Reverse runs the belt backwards (items falling off
// the infeed end are not counted and no items are loaded). The e-stop stops
// the belt whatever the motor coil says; its button is simulated with
// coil 8 (a discrete input cannot be written over Modbus).
//
//	coil     0             motor run
//	coil     1             reverse
//	coil     8             simulation: e-stop button pressed (default off)
//	discrete 0             eye_in: an item is at the infeed eye
//	discrete 1             eye_out: an item is at the outfeed eye
//	discrete 2             e-stop pressed
//	input    0    uint16   items delivered (wraps at 65536)
//	input    1    uint16   items on the belt
//
// Safe values on comm loss: motor run off, reverse off (the belt stops);
// coil 8 is the simulation's button, not an output, and stays as it is.
package sim
