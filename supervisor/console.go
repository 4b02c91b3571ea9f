package supervisor

import (
	"bytes"
	"sync"
)

// Console keeps the last lines a partition's program wrote (stdout, stderr
// or a serial console), like gokrazy's ring buffer of logs. It is an
// io.Writer safe for concurrent use; an unfinished line is kept until its
// newline arrives (or it grows past MaxLine).
type Console struct {
	mu      sync.Mutex
	lines   []string
	next    int
	full    bool
	partial []byte
	// OnLine, when set, sees every complete line (e.g. to log it).
	OnLine func(line string)
}

// MaxLine is the longest line kept; longer ones are split.
const MaxLine = 4096

// NewConsole keeps the last n lines (n >= 1).
func NewConsole(n int) *Console { return &Console{lines: make([]string, max(n, 1))} }

// Write splits p into lines and keeps them.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if room := MaxLine - len(c.partial); i < 0 || i > room {
			take := min(len(p), room)
			c.partial = append(c.partial, p[:take]...)
			p = p[take:]
			if len(c.partial) >= MaxLine {
				c.addLocked(string(c.partial))
				c.partial = c.partial[:0]
			}
			continue
		}
		c.partial = append(c.partial, p[:i]...)
		c.addLocked(string(c.partial))
		c.partial = c.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (c *Console) addLocked(line string) {
	c.lines[c.next] = line
	c.next = (c.next + 1) % len(c.lines)
	if c.next == 0 {
		c.full = true
	}
	if c.OnLine != nil {
		c.OnLine(line)
	}
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
