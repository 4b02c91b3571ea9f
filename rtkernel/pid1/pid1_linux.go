//go:build linux

package pid1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Setup mounts the pseudo file systems, loads modules and reads the boot
// facts. Failures that leave the kernel usable are logged, not fatal.
func Setup(log *slog.Logger) (*Boot, error) {
	for _, m := range []struct {
		src, dst, typ string
		flags         uintptr
		data          string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("pid1: mount %s on %s: %w", m.typ, m.dst, err)
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	b := &Boot{Params: ParseCmdline(string(cmdline))}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		b.Release = unix.ByteSliceToString(uts.Release[:])
	}
	rt, _ := os.ReadFile("/sys/kernel/realtime")
	b.Realtime = strings.TrimSpace(string(rt)) == "1"
	LoadModules(log, "/"+ModuleOrder)
	return b, nil
}

// LoadModules loads every module listed (one path per line) with
// finit_module, in order; modules already present are fine.
func LoadModules(log *slog.Logger, list string) {
	f, err := os.Open(list)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		if err := loadModule(p); err != nil {
			log.Warn("module not loaded", "module", p, "err", err)
		}
	}
}

func loadModule(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	if err := unix.FinitModule(fd, "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", p, err)
	}
	return nil
}

// UpNIC brings lo up and gives the first Ethernet link cidr (e.g.
// "10.0.2.15/24") and, if set, a default gateway. When name is set the link
// is renamed to it, so the dedicated NIC carries inside the partition the
// name the config gives it (devices bind to it by that name). It returns
// the link name.
func UpNIC(name, cidr, gateway string) (string, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	if cidr == "" {
		return "", nil
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return "", fmt.Errorf("pid1: NIC address %q: %w", cidr, err)
	}
	var link netlink.Link
	deadline := time.Now().Add(5 * time.Second)
	for link == nil {
		links, err := netlink.LinkList()
		if err != nil {
			return "", fmt.Errorf("pid1: listing links: %w", err)
		}
		for _, l := range links {
			if l.Type() == "device" && l.Attrs().Name != "lo" && len(l.Attrs().HardwareAddr) == 6 {
				link = l
				break
			}
		}
		if link == nil {
			if time.Now().After(deadline) {
				return "", errors.New("pid1: no Ethernet link appeared within 5s (is the NIC driver in the image?)")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if name != "" && name != link.Attrs().Name && len(name) < 16 {
		if err := netlink.LinkSetName(link, name); err != nil {
			return "", fmt.Errorf("pid1: rename %s to %s: %w", link.Attrs().Name, name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return "", fmt.Errorf("pid1: %s after rename: %w", name, err)
		}
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return "", fmt.Errorf("pid1: %s: add %s: %w", link.Attrs().Name, cidr, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return "", fmt.Errorf("pid1: %s: up: %w", link.Attrs().Name, err)
	}
	if gateway != "" {
		gw, err := netlink.ParseAddr(gateway + "/32")
		if err == nil {
			_ = netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.IP})
		}
	}
	return link.Attrs().Name, nil
}

// EnableBAR enables an ivshmem PCI device so its BAR can be mapped.
func EnableBAR(loc ShmLocation) error {
	if loc.Enable == "" {
		return nil
	}
	if err := os.WriteFile(loc.Enable, []byte("1"), 0); err != nil {
		return fmt.Errorf("pid1: enable %s: %w", loc.Enable, err)
	}
	return nil
}

// Reap collects orphaned children until ctx is done.
func Reap(ctx context.Context) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}

// PowerOff syncs and powers the kernel off; it does not return on success.
func PowerOff() error {
	unix.Sync()
	return fmt.Errorf("pid1: reboot(POWER_OFF): %w", unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF))
}
