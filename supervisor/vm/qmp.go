package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// QMP is a minimal client of QEMU's machine protocol: capabilities
// negotiation, synchronous commands (which skip events) and, on a
// connection used for nothing else, events (ReadEvent).
type QMP struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialQMP connects to a QMP socket, retrying until ctx ends (QEMU creates
// the socket shortly after it starts).
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			q := &QMP{conn: c, r: bufio.NewReader(c)}
			if dl, ok := ctx.Deadline(); ok {
				_ = c.SetDeadline(dl)
			}
			if _, err := q.r.ReadBytes('\n'); err != nil { // greeting
				c.Close()
				return nil, fmt.Errorf("vm: qmp %s: greeting: %w", path, err)
			}
			if _, err := q.Execute("qmp_capabilities", nil); err != nil {
				c.Close()
				return nil, err
			}
			_ = c.SetDeadline(time.Time{})
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: qmp %s: %w (last: %v)", path, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Execute runs one command and returns its "return" value.
func (q *QMP) Execute(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	_ = q.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer q.conn.SetDeadline(time.Time{})
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("vm: qmp %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("vm: qmp %s: %w", cmd, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("vm: qmp %s: bad reply %q: %w", cmd, line, err)
		}
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			return nil, fmt.Errorf("vm: qmp %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
		default:
			return resp.Return, nil
		}
	}
}

// Event is one asynchronous QMP event, e.g. {"event": "WATCHDOG",
// "data": {"action": "pause"}}.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// ReadEvent returns the next event, skipping anything else. It waits until
// one comes or the connection ends: QEMU's end closes it, and Close ends a
// wait from another goroutine.
func (q *QMP) ReadEvent() (Event, error) {
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return Event{}, fmt.Errorf("vm: qmp events: %w", err)
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return Event{}, fmt.Errorf("vm: qmp events: bad message %q: %w", line, err)
		}
		if e.Name != "" {
			return e, nil
		}
	}
}

// VCPUThreads returns the host thread id of each vCPU, by CPU index.
func (q *QMP) VCPUThreads() (map[int]int, error) {
	raw, err := q.Execute("query-cpus-fast", nil)
	if err != nil {
		return nil, err
	}
	var cpus []struct {
		Index  int `json:"cpu-index"`
		Thread int `json:"thread-id"`
	}
	if err := json.Unmarshal(raw, &cpus); err != nil {
		return nil, fmt.Errorf("vm: qmp query-cpus-fast: %w", err)
	}
	m := make(map[int]int, len(cpus))
	for _, c := range cpus {
		m[c.Index] = c.Thread
	}
	return m, nil
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }
