package supervisor

import (
	"bytes"
	"sync"
)

// Console keeps the last lines a partition's program wrote (stdout, stderr
// or a serial console), like gokrazy's ring buffer of logs. It is an
// io.Writer safe for concurrent use; an unfinished line is kept until its
// newline arrives (or it grows past MaxLine). A serial console's CRLF line
// ends are taken as newlines (the CR is dropped).
type Console struct {
	mu      sync.Mutex
	lines   []string
	next    int
	full    bool
	partial []byte
	// OnLine, when set, sees every complete line (e.g. to log it), in
	// order. It is called outside the ring's lock: Lines does not wait for
	// it.
	OnLine func(line string)
	// seeing serialises the OnLine calls; it is taken before mu is let go,
	// so lines reach OnLine in the ring's order.
	seeing sync.Mutex
}

// MaxLine is the longest line kept; longer ones are split.
const MaxLine = 4096

// NewConsole keeps the last n lines (n >= 1).
func NewConsole(n int) *Console { return &Console{lines: make([]string, max(n, 1))} }

// Write splits p into lines and keeps them.
func (c *Console) Write(p []byte) (int, error) {
	n := len(p)
	var done []string // complete lines, for OnLine
	c.mu.Lock()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if room := MaxLine - len(c.partial); i < 0 || i > room {
			take := min(len(p), room)
			c.partial = append(c.partial, p[:take]...)
			p = p[take:]
			if len(c.partial) >= MaxLine {
				done = append(done, c.addLocked(string(c.partial)))
				c.partial = c.partial[:0]
			}
			continue
		}
		c.partial = append(c.partial, p[:i]...)
		done = append(done, c.addLocked(string(bytes.TrimSuffix(c.partial, []byte{'\r'}))))
		c.partial = c.partial[:0]
		p = p[i+1:]
	}
	if c.OnLine == nil || len(done) == 0 {
		c.mu.Unlock()
		return n, nil
	}
	c.seeing.Lock()
	c.mu.Unlock()
	defer c.seeing.Unlock()
	for _, l := range done {
		c.OnLine(l)
	}
	return n, nil
}

func (c *Console) addLocked(line string) string {
	c.lines[c.next] = line
	c.next = (c.next + 1) % len(c.lines)
	if c.next == 0 {
		c.full = true
	}
	return line
}

// Lines returns the kept lines, oldest first.
func (c *Console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.full {
		return append([]string(nil), c.lines[:c.next]...)
	}
	return append(append([]string(nil), c.lines[c.next:]...), c.lines[:c.next]...)
}
