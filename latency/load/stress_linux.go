package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds on stopping a stress-ng load.
const (
	termGrace = 5 * time.Second // SIGTERM to the group, then SIGKILL
	killGrace = 5 * time.Second // after SIGKILL, give up waiting
)

func startStress(ctx context.Context, k Kind, opts Options) (*Load, error) {
	prog, err := findStressNG(opts)
	if err != nil {
		return nil, err
	}
	var dir string
	if k == IO {
		if dir, err = os.MkdirTemp(opts.Dir, "mkrt-load-io-"); err != nil {
			return nil, fmt.Errorf("load: io temp dir: %w", err)
		}
	}
	args := stressArgs(k, opts, dir)
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	var stderr lockedBuffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	// Own process group: Stop signals every worker stress-ng forks. Pdeathsig
	// takes the group leader down if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if dir != "" {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("load: start %s: %w", prog, err)
	}
	pgid := cmd.Process.Pid
	desc := fmt.Sprintf("%s: stress-ng %s", k, strings.Join(args, " "))
	opts.Logger.Info("load started", "kind", k, "pgid", pgid, "cmd", desc)

	l := &Load{kind: k, desc: desc, log: opts.Logger, done: make(chan struct{}), pgid: pgid}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(l.done)
	}()
	var once sync.Once
	var stopErr error
	stopping := make(chan struct{})
	l.stop = func() error {
		once.Do(func() {
			close(stopping)
			early := false
			select {
			case <-l.done:
				early = true
			default:
			}
			stopErr = stopGroup(pgid, l.done)
			// Exited on its own with an error before Stop: report why.
			if early && waitErr != nil {
				stopErr = fmt.Errorf("load: stress-ng exited early: %w: %s", waitErr, strings.TrimSpace(stderr.String()))
			}
			if dir != "" {
				if err := os.RemoveAll(dir); err != nil {
					stopErr = errors.Join(stopErr, fmt.Errorf("load: %w", err))
				}
			}
			opts.Logger.Info("load stopped", "kind", k, "pgid", pgid, "err", stopErr)
		})
		return stopErr
	}
	go func() {
		select {
		case <-ctx.Done():
			l.stop()
		case <-stopping:
		}
	}()
	return l, nil
}

// stopGroup terminates process group pgid: SIGTERM, then SIGKILL after a
// grace period, then a final SIGKILL sweep for workers that outlived the
// leader. exited is closed when the leader has been reaped.
func stopGroup(pgid int, exited <-chan struct{}) error {
	kill := func(sig syscall.Signal) error {
		if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return &os.SyscallError{Syscall: fmt.Sprintf("kill(-%d, %v)", pgid, sig), Err: err}
		}
		return nil
	}
	if err := kill(syscall.SIGTERM); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	t := time.NewTimer(termGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		if err := kill(syscall.SIGKILL); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		t.Reset(killGrace)
		select {
		case <-exited:
		case <-t.C:
			return fmt.Errorf("load: process group %d still running %v after SIGKILL", pgid, killGrace)
		}
	}
	// The group id cannot be reused while a member lives, so this only reaches stragglers.
	if err := kill(syscall.SIGKILL); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}

// lockedBuffer keeps the first 4 KiB of a child's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
