package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/bridge/web"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/deploy"
)

// newRunCmd is `mkrt run CONFIG`: supervisor, partition, bridge and
// (embedded) broker in the foreground until Ctrl-C.
func newRunCmd() *cobra.Command {
	var o deploy.Options
	var backend string
	var verbose bool
	var hostWatchdog string
	var hostWatchdogTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "run CONFIG",
		Short: "run a control config: supervisor, partition, bridge and broker (Ctrl-C stops it cleanly)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if !verbose {
				level = slog.LevelWarn
			}
			o.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			o.ConfigPath = args[0]
			o.Backend = configs.Backend(backend)
			out := cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Ready = func(r deploy.Ready) {
				printReady(out, r)
				go notifySystemd(ctx, r.Socket, o.Log)
				if hostWatchdog != "" {
					go feedHostWatchdog(ctx, r.Socket, o.Log, func() (pid1.Watchdog, error) {
						return pid1.OpenWatchdog(hostWatchdog, hostWatchdogTimeout)
					})
				}
			}
			fmt.Fprintf(out, "mkrt: starting %s (Ctrl-C stops it)\n", args[0])
			if err := deploy.Run(ctx, o); err != nil {
				return err
			}
			fmt.Fprintln(out, "mkrt: stopped; partition, region and socket released")
			return nil
		},
	}
	cmd.Flags().StringVar(&backend, "backend", "", "override partition.backend (process, vm, multikernel, parker or jailhouse)")
	cmd.Flags().StringVar(&o.StateDir, "state-dir", "", "retained values, store-and-forward buffer and audit log (default /var/lib/mkrt/NAME as root)")
	cmd.Flags().StringVar(&o.Socket, "socket", "", "control socket (default "+control.SocketPath("NAME")+")")
	cmd.Flags().StringVar(&o.Kernel, "kernel", "", "vm and second-kernel backends: kernel image (default partition.kernel.image; vm: else the newest /boot/vmlinuz-*-rt-*)")
	cmd.Flags().StringVar(&o.Init, "init", "", "vm and second-kernel backends: static mkrt-init binary for the initramfs (default: next to mkrt)")
	cmd.Flags().StringVar(&o.Jailhouse.Loader, "jailhouse-loader", "", "jailhouse backend: Jailhouse's linux-loader.bin (default: where make install puts it)")
	cmd.Flags().StringVar(&o.Jailhouse.SystemConfig, "jailhouse-system-config", "", "jailhouse backend: root-cell config to enable the hypervisor with when it is not enabled")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every component's progress")
	cmd.Flags().StringVar(&hostWatchdog, "host-watchdog", "", "feed this host watchdog device (e.g. /dev/watchdog) while the partition cycles and mkrt run answers: the machine resets when either stops (opt-in)")
	cmd.Flags().DurationVar(&hostWatchdogTimeout, "host-watchdog-timeout", 30*time.Second, "the host watchdog's timeout")
	return cmd
}

// printReady prints what is running and ready-to-paste commands, each alone
// on its own line.
func printReady(w io.Writer, r deploy.Ready) {
	cfg := r.Config
	p := r.Partition
	rt := "rt: full"
	if !p.RT {
		rt = "rt: degraded (" + p.RTWhy + ")"
	}
	fmt.Fprintf(w, "mkrt: %s is running: backend %s, cpus %s, %s\n", cfg.Metadata.Name, p.Backend, p.Isolation.CPUs, rt)
	for _, d := range p.Isolation.Degradations {
		fmt.Fprintf(w, "mkrt:   not isolated: %s\n", d)
	}
	fmt.Fprintf(w, "mkrt: shared region %s, state in %s\n\n", r.Region, r.StateDir)
	fmt.Fprintln(w, "Watch, read and command the plant:")
	mq := cfg.Bridge.MQTT
	host, port := splitHostPort(mq.Listen)
	if mq.Broker != "embedded" {
		host, port = brokerHostPort(mq.Broker)
	}
	auth, note := mqttAuth(cfg)
	if note != "" {
		fmt.Fprintln(w, note)
	}
	var topics []string
	if cfg.Bridge.Sparkplug.Enabled == nil || *cfg.Bridge.Sparkplug.Enabled {
		topics = append(topics, fmt.Sprintf("-t 'spBv1.0/%s/#'", cfg.Bridge.Sparkplug.Group))
	}
	if cfg.Bridge.JSON.Enabled == nil || *cfg.Bridge.JSON.Enabled {
		topics = append(topics, fmt.Sprintf("-t '%s/%s/#'", cfg.Bridge.JSON.Prefix, cfg.Bridge.Sparkplug.Node))
	}
	if len(topics) > 0 {
		fmt.Fprintf(w, "mosquitto_sub -h %s -p %s%s -v %s\n", host, port, auth, strings.Join(topics, " "))
	}
	if ms := cfg.Bridge.Modbus; ms.Listen != "" && len(ms.Map) > 0 {
		mh, mp := splitHostPort(ms.Listen)
		if area, first, n := firstRegisters(ms.Map); n > 0 {
			fmt.Fprintf(w, "mbpoll -m tcp -a %d -t %s -B -r %d -c %d -1 -p %s %s\n", max(ms.UnitID, 1), area, first+1, n, mp, mh)
		}
	}
	sock := ""
	if !slices.Contains(control.Dirs(), filepath.Dir(r.Socket)) {
		sock = " --socket " + r.Socket
	}
	fmt.Fprint(w, web.ReadyLine(cfg))
	fmt.Fprintf(w, "mkrt status%s\n", sock)
	fmt.Fprintf(w, "mkrt tags --watch%s\n\n", sock)
}

// mqttAuth is the -u/-P part of the mosquitto_sub line: a read-only
// user's when the config has one, else the bridge's own. A password is
// never printed (a terminal's scroll-back and make run's log are not the
// place for it): a plaintext password_file is read by the shell, else the
// line reads $MQTT_PASSWORD and note says where the password is written.
func mqttAuth(cfg *configs.Config) (auth, note string) {
	mq := cfg.Bridge.MQTT
	user, where := mq.Username, "bridge.mqtt.password"
	file := mq.PasswordFile // the bridge's own holds the password itself
	for _, u := range mq.Users {
		if u.ReadOnly {
			user, where, file = u.Username, "bridge.mqtt.users", ""
			break
		}
	}
	if user == "" {
		return "", ""
	}
	if file != "" {
		return fmt.Sprintf(" -u %s -P \"$(cat '%s')\"", user, strings.ReplaceAll(file, "'", `'\''`)), ""
	}
	return fmt.Sprintf(" -u %s -P \"$MQTT_PASSWORD\"", user),
		fmt.Sprintf("# set MQTT_PASSWORD to the password of MQTT user %s (%s in %s)", user, where, cfg.Pos.File)
}

// firstRegisters picks the register area with the most mapped float
// registers for an mbpoll line: mbpoll's type (3:float input registers,
// 4:float holding), first address and count.
func firstRegisters(m []configs.RegisterMap) (area string, first, n int) {
	for _, want := range []configs.Area{configs.AreaInput, configs.AreaHolding} {
		lo, hi := -1, -1
		for _, e := range m {
			if e.Area != want || (e.Type != "" && e.Type != tag.Float32) {
				continue
			}
			if lo < 0 || e.Address < lo {
				lo = e.Address
			}
			hi = max(hi, e.Address+2)
		}
		if lo >= 0 {
			a := "3:float"
			if want == configs.AreaHolding {
				a = "4:float"
			}
			return a, lo, (hi - lo) / 2
		}
	}
	return "", 0, 0
}

func splitHostPort(a string) (string, string) {
	i := strings.LastIndex(a, ":")
	if i < 0 {
		return a, ""
	}
	return a[:i], a[i+1:]
}

func brokerHostPort(url string) (string, string) {
	if i := strings.Index(url, "://"); i >= 0 {
		url = url[i+3:]
	}
	return splitHostPort(strings.TrimSuffix(url, "/"))
}

// notifySystemd tells systemd (a Type=notify unit) that the partition is
// up, then pings its watchdog every half WatchdogSec while the control
// socket answers a status request: a supervisor that hangs stops pinging
// and systemd restarts it, and the new one adopts the running partition.
// Outside systemd it does nothing.
func notifySystemd(ctx context.Context, socket string, log *slog.Logger) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok || err != nil {
		return // not under systemd
	}
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	c := control.NewClient(socket)
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, every/4)
		_, err := c.Status(sctx)
		cancel()
		if err != nil {
			log.Warn("systemd watchdog not pinged: the control socket does not answer", "err", err)
			continue
		}
		daemon.SdNotify(false, daemon.SdNotifyWatchdog)
	}
}

// feedHostWatchdog feeds a host watchdog device (opened by arm on the
// first cycle it sees) while the control socket answers and the
// partition's cycle counter moves; a clean stop disarms it, anything else
// lets it fire and reset the machine.
func feedHostWatchdog(ctx context.Context, socket string, log *slog.Logger, arm func() (pid1.Watchdog, error)) {
	c := control.NewClient(socket)
	f := &pid1.Feeder{Arm: arm, Log: log.With("component", "host-watchdog"), Cycle: func() (uint64, bool) {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := c.Status(sctx)
		if err != nil {
			return 0, false
		}
		return st.Cycle, true
	}}
	f.Run(ctx, time.Second)
	if err := f.Stop(ctx.Err() != nil); err != nil {
		log.Warn("host watchdog", "err", err)
	}
}
