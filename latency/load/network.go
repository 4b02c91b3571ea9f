package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// loopback is the only address the network load sends to.
const loopback = "127.0.0.1"

// tick is how often the senders refill their packet budget.
const tick = time.Millisecond

// flood is the network load: UDP datagrams to a local receiver plus one TCP
// stream to a local sink, together capped at Rate packets per second.
type flood struct {
	packets, bytes atomic.Uint64
}

func startNetwork(parent context.Context, opts Options) (*Load, error) {
	ctx, cancel := context.WithCancel(parent)
	if opts.Duration > 0 {
		ctx, cancel = context.WithTimeout(parent, opts.Duration)
	}
	udp, err := net.ListenPacket("udp4", loopback+":0")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("load: network: %w", err)
	}
	tcp, err := net.Listen("tcp4", loopback+":0")
	if err != nil {
		cancel()
		udp.Close()
		return nil, fmt.Errorf("load: network: %w", err)
	}
	f := &flood{}
	l := &Load{
		kind: Network,
		desc: fmt.Sprintf("network: loopback UDP+TCP, %d senders, <= %d packets/s of %d bytes", opts.Workers, opts.Rate, opts.PacketSize),
		log:  opts.Logger,
		done: make(chan struct{}),
		net:  f,
	}
	var wg sync.WaitGroup
	errs := make(chan error, opts.Workers+3)
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	// Closing the sockets is what unblocks the receivers.
	go func() {
		<-ctx.Done()
		udp.Close()
		tcp.Close()
	}()
	run(func() error { return drainUDP(udp, opts.PacketSize) })
	run(func() error { return sinkTCP(ctx, tcp) })
	perSender := max(1, opts.Rate/(opts.Workers+1))
	run(func() error { return streamTCP(ctx, tcp.Addr().String(), perSender, opts.PacketSize, f) })
	for i := 0; i < opts.Workers; i++ {
		run(func() error { return sendUDP(ctx, udp.LocalAddr().String(), perSender, opts.PacketSize, f) })
	}
	go func() {
		wg.Wait()
		close(l.done)
	}()
	var once sync.Once
	var stopErr error
	l.stop = func() error {
		once.Do(func() {
			cancel()
			t := time.NewTimer(5 * time.Second)
			defer t.Stop()
			select {
			case <-l.done:
			case <-t.C:
				stopErr = errors.New("load: network: senders did not stop within 5s")
				return
			}
			close(errs)
			for err := range errs {
				stopErr = errors.Join(stopErr, err)
			}
			p, b := l.NetworkStats()
			opts.Logger.Info("load stopped", "kind", Network, "packets", p, "bytes", b, "err", stopErr)
		})
		return stopErr
	}
	opts.Logger.Info("load started", "kind", Network, "desc", l.desc)
	return l, nil
}

// pace calls send up to perSec times a second, in bursts every tick, until
// ctx ends or send fails.
func pace(ctx context.Context, perSec int, send func() error) error {
	per := perSec / int(time.Second/tick)
	carry := perSec % int(time.Second/tick)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	acc := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
		n := per
		if acc += carry; acc >= int(time.Second/tick) {
			acc -= int(time.Second / tick)
			n++
		}
		for i := 0; i < n; i++ {
			if err := send(); err != nil {
				return err
			}
		}
	}
}

func sendUDP(ctx context.Context, addr string, perSec, size int, f *flood) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return fmt.Errorf("load: network: %w", err)
	}
	defer c.Close()
	buf := make([]byte, size)
	return pace(ctx, perSec, func() error {
		n, err := c.Write(buf)
		if err != nil {
			// A full socket buffer drops the datagram; that is load, not failure.
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) {
				return nil
			}
			return fmt.Errorf("load: network: udp: %w", err)
		}
		f.packets.Add(1)
		f.bytes.Add(uint64(n))
		return nil
	})
}

func drainUDP(c net.PacketConn, size int) error {
	buf := make([]byte, size)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("load: network: udp receive: %w", err)
		}
	}
}

func sinkTCP(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("load: network: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() { <-ctx.Done(); c.Close() }()
			io.Copy(io.Discard, c)
		}()
	}
}

func streamTCP(ctx context.Context, addr string, perSec, size int, f *flood) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("load: network: %w", err)
	}
	go func() { <-ctx.Done(); c.Close() }()
	buf := make([]byte, size)
	return pace(ctx, perSec, func() error {
		n, err := c.Write(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("load: network: tcp: %w", err)
		}
		f.packets.Add(1)
		f.bytes.Add(uint64(n))
		return nil
	})
}
