// Package kexectest is the fake of kexec.Syscalls: a Recorder that keeps
// every mount, umount2, kexec_file_load and reboot call with the bytes
// behind its pointers, and checks them as the kernel does (a command line
// whose length counts its terminating NUL, known flag bits, instance ids in
// range, the reboot magic numbers, fds that can be read). Backends' fakes
// (multikerneltest, parkertest) embed a Host: the Recorder with their
// state machine as its Handle, the host's files, injected file faults and
// the kernfs mount they share. Nothing here needs privileges.
package kexectest

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/supervisor/kexec"
)

// Call is one recorded system call.
type Call struct {
	// Syscall is "mount", "umount2", "kexec_file_load" or "reboot".
	Syscall string

	Source, Target, FSType, Data string
	MountFlags                   uintptr
	UnmountFlags                 int

	KernelFD, InitrdFD int
	CmdlineLen         uintptr
	// Cmdline is the CmdlineLen bytes the pointer pointed at (NUL included).
	Cmdline []byte
	Flags   uintptr
	// KernelHead is the first bytes read from KernelFD at offset 0.
	KernelHead []byte

	Magic1, Magic2, Cmd uint32
	// Arg is the 4 bytes behind reboot's argument (struct { int32 id }).
	Arg []byte
}

// ID is the multikernel instance id of the call: the KEXEC_MK_ID bits of
// kexec_file_load's flags, or reboot's int32 argument (little-endian).
func (c Call) ID() int {
	if c.Syscall == "reboot" {
		if len(c.Arg) != 4 {
			return -1
		}
		return int(int32(binary.LittleEndian.Uint32(c.Arg)))
	}
	return kexec.IDOf(c.Flags)
}

// CmdlineString is the command line without its NUL.
func (c Call) CmdlineString() string {
	if n := len(c.Cmdline); n > 0 && c.Cmdline[n-1] == 0 {
		return string(c.Cmdline[:n-1])
	}
	return string(c.Cmdline)
}

func (c Call) String() string {
	switch c.Syscall {
	case "mount":
		return fmt.Sprintf("mount(%q, %q, %q, %#x, %q)", c.Source, c.Target, c.FSType, c.MountFlags, c.Data)
	case "umount2":
		return fmt.Sprintf("umount2(%q, %d)", c.Target, c.UnmountFlags)
	case "kexec_file_load":
		return fmt.Sprintf("kexec_file_load(%d, %d, %d, %q, %#x)", c.KernelFD, c.InitrdFD, c.CmdlineLen, c.CmdlineString(), c.Flags)
	}
	return fmt.Sprintf("reboot(%#x, %#x, %#x, % x)", c.Magic1, c.Magic2, c.Cmd, c.Arg)
}

// knownFlags are the kexec_file_load flag bits a kernel with the pinned
// multikernel patch set accepts.
const knownFlags = kexec.FileUnload | kexec.FileOnCrash | kexec.FileNoInitramfs | kexec.Multikernel | kexec.MKIDMask

// Recorder records and checks calls. The zero value is ready to use.
type Recorder struct {
	// Unprivileged makes every call fail with EPERM, as without
	// CAP_SYS_ADMIN / CAP_SYS_BOOT.
	Unprivileged bool
	// Handle, when set, sees each call that passed the checks; its error
	// is the call's result.
	Handle func(c Call) error

	mu         sync.Mutex
	calls      []Call
	violations []string
	fail       map[string]error
}

var _ kexec.Syscalls = (*Recorder)(nil)

// Fail makes every later call of syscall fail with err (nil clears it).
func (r *Recorder) Fail(syscall string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = map[string]error{}
	}
	if err == nil {
		delete(r.fail, syscall)
		return
	}
	r.fail[syscall] = err
}

// Calls returns every call so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Violations lists the argument layouts the kernel would have refused.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

func (r *Recorder) finish(c Call, violation string) error {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	if r.Unprivileged {
		r.mu.Unlock()
		return syscall.EPERM
	}
	if violation != "" {
		r.violations = append(r.violations, c.String()+": "+violation)
		r.mu.Unlock()
		return syscall.EINVAL
	}
	err := r.fail[c.Syscall]
	h := r.Handle
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if h != nil {
		return h(c)
	}
	return nil
}

// Mount records mount(2).
func (r *Recorder) Mount(source, target, fstype string, flags uintptr, data string) error {
	return r.finish(Call{Syscall: "mount", Source: source, Target: target, FSType: fstype, MountFlags: flags, Data: data}, "")
}

// Unmount records umount2(2).
func (r *Recorder) Unmount(target string, flags int) error {
	return r.finish(Call{Syscall: "umount2", Target: target, UnmountFlags: flags}, "")
}

// KexecFileLoad records kexec_file_load(2) and checks its layout.
func (r *Recorder) KexecFileLoad(kernelFD, initrdFD int, cmdlineLen uintptr, cmdline *byte, flags uintptr) error {
	c := Call{Syscall: "kexec_file_load", KernelFD: kernelFD, InitrdFD: initrdFD, CmdlineLen: cmdlineLen, Flags: flags}
	if cmdline != nil && cmdlineLen > 0 && cmdlineLen <= 1<<16 {
		c.Cmdline = append([]byte(nil), unsafe.Slice(cmdline, cmdlineLen)...)
	}
	return r.finish(c, checkKexec(&c, cmdline))
}

func checkKexec(c *Call, cmdline *byte) string {
	if c.Flags&^knownFlags != 0 {
		return fmt.Sprintf("unknown flag bits %#x", c.Flags&^knownFlags)
	}
	mk := c.Flags&kexec.Multikernel != 0
	if id := kexec.IDOf(c.Flags); mk && (id < 1 || id > 511) {
		return fmt.Sprintf("multikernel instance id %d out of 1-511", id)
	} else if !mk && id != 0 {
		return "KEXEC_MK_ID bits without KEXEC_MULTIKERNEL"
	}
	if c.Flags&kexec.FileUnload != 0 {
		if c.KernelFD != -1 || c.InitrdFD != -1 || c.CmdlineLen != 0 || cmdline != nil {
			return "unload with a kernel, initrd or command line"
		}
		return ""
	}
	if c.CmdlineLen > 1<<16 {
		return "command line longer than the kernel's limit"
	}
	if c.CmdlineLen > 0 {
		if cmdline == nil {
			return "command line length without a pointer"
		}
		for i, b := range c.Cmdline {
			if b == 0 && i != len(c.Cmdline)-1 {
				return fmt.Sprintf("NUL at %d inside the command line (length must be len+1)", i)
			}
		}
		if c.Cmdline[len(c.Cmdline)-1] != 0 {
			return "command line not NUL-terminated within its length"
		}
	}
	head := make([]byte, 64)
	n, err := unix.Pread(c.KernelFD, head, 0)
	if err != nil || n == 0 {
		return fmt.Sprintf("kernel fd %d cannot be read: %v", c.KernelFD, err)
	}
	c.KernelHead = head[:n]
	noInitramfs := c.Flags&kexec.FileNoInitramfs != 0
	if !noInitramfs {
		if _, err := unix.Pread(c.InitrdFD, make([]byte, 1), 0); err != nil {
			return fmt.Sprintf("initrd fd %d cannot be read and KEXEC_FILE_NO_INITRAMFS is not set: %v", c.InitrdFD, err)
		}
	}
	return ""
}

// Reboot records reboot(2) and checks the magic numbers and the argument.
func (r *Recorder) Reboot(magic1, magic2, cmd uint32, arg unsafe.Pointer) error {
	c := Call{Syscall: "reboot", Magic1: magic1, Magic2: magic2, Cmd: cmd}
	if arg != nil {
		c.Arg = append([]byte(nil), unsafe.Slice((*byte)(arg), 4)...)
	}
	v := ""
	switch {
	case magic1 != kexec.Magic1:
		v = fmt.Sprintf("magic1 %#x, want %#x", magic1, kexec.Magic1)
	case magic2 != kexec.Magic2 && magic2 != 0x05121996 && magic2 != 0x16041998 && magic2 != 0x20112000:
		v = fmt.Sprintf("magic2 %#x is not a reboot magic", magic2)
	case (cmd == kexec.CmdStart || cmd == kexec.CmdHalt || cmd == kexec.CmdForceHalt) && arg == nil:
		v = "multikernel command without its struct { int32 id } argument"
	}
	return r.finish(c, v)
}
