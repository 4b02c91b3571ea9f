// Package jailhouse is the jailhouse partition backend: the control program
// runs in a non-root Linux cell of the Siemens Jailhouse partitioning
// hypervisor, on the partition's cores and a slice of physical memory, and
// talks to the general kernel through an ivshmem-v2 virtual PCI device
// (110A:4106) whose read-write section is the shared-memory channel.
//
// The binary formats and ioctls are pinned to Jailhouse v0.12
// (JAILHOUSE_CONFIG_REVISION 12, include/jailhouse/cell-config.h,
// include/jailhouse/console.h and driver/jailhouse.h of tag v0.12). A cell
// config of another revision is refused with ErrRevision.
//
// What is here:
//
//   - Cell, Encode and Decode: struct jailhouse_cell_desc and everything that
//     follows it (CPU bitmap, memory regions, cache regions, irqchips, PIO
//     regions, PCI devices, PCI capabilities, stream ids), packed and
//     little-endian, byte for byte as the pinned headers lay them out.
//   - Generate: a cell config from a control config's partition — CPUs, cell
//     RAM placed in a physical window (Options.MemoryBase), the comm region,
//     the ivshmem-v2 device and its state table / read-write / output
//     sections, the dedicated NIC (BAR masks, MSI and MSI-X read from sysfs
//     through an fs.FS) and the 8250 console at PIO 0x3f8 — and the matching
//     root-cell snippet the host's system config must carry.
//   - LinuxParams: the x86 boot-params blob (zero page with the cell's e820
//     map, the kernel's setup header, SETUP_JAILHOUSE setup_data and the
//     command line) that jailhouse-cell-linux writes, and the image
//     placement (loader 0xf0000, params 0xf5000, kernel at its preferred
//     address, initramfs after it).
//   - The /dev/jailhouse ioctls (ENABLE, DISABLE, CELL_CREATE, CELL_LOAD,
//     CELL_START, CELL_DESTROY) with their argument structs, behind the
//     Device seam; Steps and Partition drive them as undoable
//     supervisor.Steps through a supervisor.Lifecycle (no lock is held
//     while an ioctl runs or a stop waits for the cell). While the cell
//     runs, its state is polled and what the hypervisor console shows is
//     copied into the partition's console ring (supervisor.Console).
//     jailhousetest holds a fake /dev/jailhouse that enforces the driver's
//     state machine and records every argument.
//
// To run for real it needs root, an x86-64 host booted with the Jailhouse
// driver loaded (jailhouse.ko), a root-cell system config that declares the
// matching ivshmem-v2 peer (see Config.RootCellSnippet), the cell's memory
// window reserved on the host command line (memmap=SIZE$BASE), and
// Jailhouse's linux-loader.bin (installed with Jailhouse, usually
// /usr/local/libexec/jailhouse/linux-loader.bin). The Jailhouse hypervisor
// cannot run on the CI machines (no usable VT-x): every kernel interaction
// here has only been exercised against the fakes in jailhousetest.
package jailhouse
