// Package shm is the shared-memory channel between the executive (in the
// application kernel) and the bridge and supervisor (on the general kernel):
// one fixed-size, versioned, little-endian region without pointers, mapped by
// both sides, written with sync/atomic.
//
// # Region
//
// The region starts with a header — magic "mkrt-shm", layout version, region
// size, the section table, the config hash, the partition name, the
// histogram range and ring capacities, all under a CRC — followed by the
// boot id and pid of the writer that owns it. Then the sections, each
// 64-byte aligned, each hot counter alone on its cache line:
//
//   - heartbeat: cycle counter, monotonic ns of the last cycle, executive
//     state and fault code; real-time mode and its reason; drop counters;
//   - task table: name and period per task; overrun count per task;
//   - tag directory: name, type, unit, access, limits per tag (written once
//     when the writer attaches);
//   - process image: value, quality, reason, source time and the sequence it
//     last changed at, per tag, under one seqlock; string tags get a fixed
//     slot of their configured length;
//   - command ring (bridge → executive) and result ring (back): SPSC rings
//     of fixed-size slots;
//   - event ring (executive → bridge): alarms, overruns, faults, state
//     changes, log lines;
//   - histograms: per task a wake-up latency and an execution time
//     HdrHistogram (lowest 1 ns, highest and digits from configs.Latency),
//     stored as the counts array hdrhistogram-go would hold.
//
// The layout is computed from the compiled config (NewLayout(ParamsFor(cfg,
// tags, cfg.Hash()))): both sides compute the same one and refuse a region
// that differs, naming the field and both values (MismatchError wrapping
// ErrConfigHash, ErrSize, ErrLayout, ...).
//
// # Executive side (Writer)
//
//	w, err := shm.AttachWriter(ctx, region, layout, shm.WriterOptions{})
//	// every cycle — none of these block, allocate or lock:
//	for w.PollCommand(&cmd) && n < task.Commands { ...; w.Reply(result) }
//	w.Publish(cycle, table.Samples, table.Text) // only changed tags are written
//	w.Beat(cycle, monoNs)
//	w.RecordWakeup(task, latencyNs); w.RecordExec(task, execNs)
//	w.PushEvent(shm.Event{Kind: shm.EventAlarmRaise, Tag: id, Text: "level high"})
//
// AttachWriter formats a blank region, refuses a region formatted for
// another config unless forced, and refuses a region whose previous writer
// is still alive (its heartbeat moved within WriterOptions.StaleAfter:
// ErrWriterLive) unless forced. A full event ring drops the event and
// counts it; a full result ring leaves commands in the command ring. The
// executive is never slowed by the bridge.
//
// # Bridge side (Reader)
//
//	r, err := shm.AttachReader(region, layout, shm.ReaderOptions{}) // ErrNotFormatted: retry
//	err = r.Snapshot(ctx, &image)             // consistent copy, retried under the seqlock
//	ids = image.ChangedSince(lastSeq, ids[:0]) // report by exception
//	res, err := r.Do(ctx, shm.Command{Kind: shm.CmdWriteTag, Tag: id, Value: 42, Origin: shm.NewOrigin("mqtt:op")})
//	// err: ErrBusy (ring full), ErrTimeout (deadline); res.Err(): ErrOutOfRange, ErrReadOnly, ...
//	n := r.Events(buf)
//	wake, exec, err := r.Histograms(task) // *hdrhistogram.Histogram
//	hb := r.Heartbeat()
//
// One executive writes and one bridge process reads a region; the Reader is
// safe for concurrent use by the bridge's goroutines.
//
// # Transports
//
// Open maps a Location: a file (/dev/shm/<name>, created by the host side
// with mode 0600 and its size reserved, so a full /dev/shm is an error and
// not a SIGBUS; a file left there by another user, a symbolic link or a
// hard link is refused, see CreateFile), a PCI BAR (resource2 of an ivshmem device
// inside a VM or a Jailhouse cell; the device is enabled first), or physical
// memory through /dev/mem at an address (multikernel and Parker
// reservations). The sysfs directory and the /dev/mem path are fields of
// the Location: the tests use a sysfs-shaped temporary directory for the
// PCI BAR and an ordinary file standing in for /dev/mem. The real ivshmem
// device and a real /dev/mem reservation are exercised only where they
// exist (QEMU boot tests, reference boards).
//
// # Performance
//
// The bridge does not watch the image. Each of its servers (bridge/sparkplug,
// bridge/mqttjson, bridge/modbusserver) scans on a ticker of
// bridge.Options.Poll, 10ms unless configured: every tick copies the whole
// image with Snapshot, through bridge/plant.Region, which copies it once
// more into the server's slices, and compares each tag with what it last
// reported; none of them reads Seq. A value the executive publishes thus
// reaches the bridge 0 to 10ms later (5ms on average), plus the Snapshot:
// about 3ns a tag with warm caches, 0.3µs for 100 tags and 31µs for
// 10,000 (BenchmarkSnapshot). Commands wait in the same way: the executive
// takes them at the start of a cycle, and Await looks for the result after
// 10µs, then at pauses doubling up to ReaderOptions.PollMax (1ms).
//
// The channel itself takes a few hundred nanoseconds. Measured on an AMD
// EPYC (Zen 3) with 2 vCPUs under KVM, Linux 6.18, Go 1.26, the two
// processes pinned to CPUs 0 and 1 at SCHED_FIFO, medians of 17 runs of
// each split by where the vCPUs were (see below; one clock read, about
// 40ns, is in each latency):
//
//	                                        vCPUs near       vCPUs far
//	cache line, one way, p50 / p99          0.12 / 0.52µs    0.33 / 0.54µs
//	Publish → Seq moved → Snapshot, same    0.25 / 0.91µs    0.56 / 1.10µs
//	command ring, results included          14M commands/s   7.0M commands/s
//
// The hypervisor moves the two vCPUs between host cores that share caches
// ("near": a cache line's round trip takes 0.16µs) and cores that do not
// ("far": 0.57µs); floor-rtt-ns in the benchmark output says which. Publish
// to observe is the floor plus one cache-line transfer: a seqlock reader
// reads the image's cycle and slot lines only once it has seen an even
// sequence, so they arrive one transfer after it (seeing Seq move costs
// about the floor). The p99s follow the machine: in about one run in four
// something stalls a side for 5-9µs (most likely the VM's timer ticks and
// interrupts, about 1,000 a second on each CPU), and the floor's p99 and
// the channel's go there together. The command ring is
// limited by its producer: Submit ends with locked instructions (the
// Reader's mutex, the atomic store of the ring index), which on amd64 wait
// until the slot's cache line has been taken from the executive's core;
// they are 70-80% of its time in a profile, 60-75ns a command near and
// 130-150ns far.
//
//	go test -run '^$' -bench 'PublishObserve|CommandRing|Snapshot' -count 5 ./shm/ -args -shm.fifo
//
// # Running for real
//
// Linux, little-endian hosts (amd64, arm64). A file in /dev/shm needs
// nothing special; /dev/mem needs root (CAP_SYS_RAWIO) and a kernel that
// lets the reserved range be mapped (CONFIG_STRICT_DEVMEM allows only
// non-RAM ranges, which a memmap= or multikernel reservation is); a PCI BAR
// needs root or write access to the device's sysfs files. Corruption of the
// region by the other side is detected, never a crash, but the mapped file
// must not be truncated while mapped (that is a SIGBUS, as for any mmap).
package shm
