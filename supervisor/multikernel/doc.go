// Package multikernel is the multikernel partition backend: the application
// kernel runs as a second kernel beside the general one, spawned by kexec on
// the multikernel patch set (github.com/multikernel/linux).
//
// The interface is private to that patch set and has changed between
// releases. This package speaks one pinned version: the kernel as driven
// by its own management tool kerf 0.3.x (github.com/multikernel/kerf, commit 210659e,
// 2026-08-19). Pin names it in code.
//
// Two halves:
//
//   - The generator (ReadHost, Generate, Plan.Overlay, Plan.DTS) turns a
//     partition's YAML into the instance's device-tree overlay: CPUs as
//     physical APIC ids read from /proc/cpuinfo, the instance's memory range
//     inside the pool the host gave away (/proc/iomem "multikernel" range or
//     the baseline device tree), and the dedicated NICs by their baseline
//     labels. It needs nothing but read access to those files (addresses in
//     /proc/iomem read as zero without root).
//   - The backend (New, Partition) brings the instance up as named, undoable
//     supervisor.Steps: check kernel support, mount the kernfs at
//     /sys/fs/multikernel, check (or write) the baseline, create the
//     instance by writing the overlay to overlays/new (undone by rmdir of the
//     overlays/tx_<n> it created), map the shared region through /dev/mem,
//     kexec_file_load the ELF vmlinux with KEXEC_MULTIKERNEL|KEXEC_MK_ID(id)
//     (a bzImage is decompressed first), and start it with reboot(2). Stop
//     halts (force-halts when the context ends), unloads, removes the
//     instance, unmaps and unmounts what it mounted. The steps run through
//     a supervisor.Lifecycle; those parker has too (check, mount,
//     shared-memory, load, start and their waits) are kexec.Secondary's,
//     given this package's kernfs, flags and reboot(2) commands.
//
// mkrt run (supervisor/deploy) uses Locate to learn where the shared region
// will be before the start, formats it there (Formatted: the start then
// does not clear it), and for a hand-over starts a second instance under
// another Name, its memory placed clear of the running one's (Beside). The
// kernfs mount is shared by the instances of one process: the last to stop
// unmounts it.
//
// The shared-memory channel is the top partition.shared_memory bytes of the
// instance's memory range. The application kernel is told to keep its hands
// off it with memmap=<size>$<addr> on its command line and where to find it
// with mkrt.shm=phys:<addr>,<size>; both sides map it through /dev/mem.
//
// The multikernel interface offers no host-side console of the instance
// (the instance's own user space sees /dev/mktty): Console returns nothing
// and Info says so.
//
// Running for real needs root (CAP_SYS_ADMIN for the mount and the overlay,
// CAP_SYS_BOOT for kexec_file_load and reboot), a kernel built from the
// pinned multikernel tree, and /dev/mem access to the instance's range
// (CONFIG_STRICT_DEVMEM lets reserved ranges through). No such kernel exists
// on the development machines: every kernel interaction here goes through
// seams (supervisor/process.FS for kernfs files, kexec.Syscalls for mount,
// kexec_file_load and reboot, a device path for /dev/mem) and has run only
// against the faithful fakes in multikerneltest and kexectest.
package multikernel

// Pin names the version of the multikernel interface this package speaks.
const Pin = "multikernel/linux as driven by kerf 0.3.x (github.com/multikernel/kerf commit 210659e, 2026-08-19)"
