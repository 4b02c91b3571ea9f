// Package modbus is the executive's Modbus field I/O: a client driver that
// polls remote I/O and drives over Modbus TCP, Modbus RTU on a serial line,
// or RTU frames over TCP, and hands values and their quality to the control
// cycle without ever making it wait.
//
// One Scanner serves one configs.Device. It groups the device's tags into
// the fewest read requests the protocol allows (at most 125 registers or
// 2000 coils, no run of unused addresses wider than max_gap), polls them
// every poll period in its own goroutine, decodes every config data type
// (bool, int16, uint16, int32, uint32, int64, float32, float64, string; byte
// and word orders ABCD, CDAB, BADC, DCBA; scale and offset; one bit of a
// register) with the register codec of package io/modbus/register, the one
// the bridge's Modbus server uses too, and writes outputs when they change
// (and every write_every), coalescing back-to-back outputs into one
// FC16/FC15 request, FC6/FC5 for a single register or coil and FC22 (mask
// write) for one bit of a register (read-modify-write on devices without
// FC22).
//
// A device with a watchdog (configs.DeviceWatchdog: the comm-loss watchdog
// of a remote-I/O coupler) has it armed at every connect, before any other
// request: its timeout register written, then a first keep-alive. The
// keep-alive is then written every keepalive_every from the I/O goroutine,
// between requests and between polls (a poll period longer than the
// watchdog's timeout is fine), never from the control cycle, so it waits at
// most for one request in flight. A refused watchdog write (a protocol
// exception) is counted and logged like a refused output write; a lost
// connection is a lost device.
//
// DriveSafe is the same driver run once, for the supervisor on the general
// side: it drives every output of watchdog.safe_state to its safe value on
// every device concurrently, creating every socket on the calling goroutine
// so that it works from a thread that entered the partition's network
// namespace.
//
// Zero-valued device settings take the defaults of configs.Device; since
// zero means "default", a negative retries means no retries and a negative
// max_gap means no gaps (only back-to-back tags share a request).
//
// Every sample carries a quality and a source timestamp (the time the
// answer arrived; Modbus carries none): good; uncertain (out of range) for a
// value outside the tag's min/max or a NaN; stale while a request whose
// answer was garbled is retried; bad with the reason (timeout, connection
// failure, protocol exception, malformed frame, not connected). A device
// that does not answer turns all its tags bad after one timeout, before any
// retry. A failed device is reconnected with exponential backoff, and its
// outputs are written again once it is back (it may have restarted).
//
// The control cycle calls Latest and SetOutputs: both are wait-free and
// allocation-free (triple buffers, one atomic swap each way), so a slow or
// dead device costs the cycle nothing and no device delays another.
//
// Frames are encoded and checked with github.com/goburrow/modbus (v0.1.0);
// the transport under it is this package's, which rejects a wrong
// transaction id, protocol id or function, tells a truncated answer from a
// silent device and closes the connection after any doubtful answer so a
// late reply can never be taken for the next one. On Linux a dialed socket is
// taken out of the Go runtime's network poller and the I/O goroutine's thread
// waits for answers in poll(2), as libmodbus does in select(2): per-segment
// epoll wake-ups cost more than a request's round trip on a small machine.
//
// To run for real it needs a route to the devices: when Device.Interface is
// set, connections are bound to that interface (SO_BINDTODEVICE, which
// needs CAP_NET_RAW on kernels before 5.7), or the executive runs inside the
// partition's network namespace where the dedicated NIC lives; modbus-rtu
// needs read/write access to the serial device. Nothing else needs
// privileges.
package modbus
