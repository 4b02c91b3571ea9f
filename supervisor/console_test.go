package supervisor

import (
	"reflect"
	"strings"
	"testing"
)

func TestConsoleKeepsLastLines(t *testing.T) {
	c := NewConsole(3)
	var seen []string
	c.OnLine = func(l string) { seen = append(seen, l) }
	c.Write([]byte("a\nb"))
	c.Write([]byte("c\nd\ne\n"))
	if got := c.Lines(); !reflect.DeepEqual(got, []string{"bc", "d", "e"}) {
		t.Fatalf("lines %q", got)
	}
	if len(seen) != 4 {
		t.Fatalf("OnLine saw %q", seen)
	}
	c.Write([]byte(strings.Repeat("x", MaxLine+10)))
	if got := c.Lines(); len(got[2]) != MaxLine {
		t.Fatalf("long line not split: %d", len(got[2]))
	}
}

func TestConsoleSerialLineEnds(t *testing.T) {
	c := NewConsole(4)
	c.Write([]byte("Linux version 6.1\r\nmkrt-init\r"))
	c.Write([]byte("\nhalf\r"))
	if got := c.Lines(); !reflect.DeepEqual(got, []string{"Linux version 6.1", "mkrt-init"}) {
		t.Fatalf("lines %q", got)
	}
}

// OnLine runs outside the ring's lock: a slow log does not hold up Lines.
func TestConsoleOnLineDoesNotHoldTheRing(t *testing.T) {
	c := NewConsole(4)
	entered, release := make(chan struct{}), make(chan struct{})
	c.OnLine = func(string) { close(entered); <-release }
	go c.Write([]byte("slow\n"))
	<-entered
	if got := c.Lines(); !reflect.DeepEqual(got, []string{"slow"}) {
		t.Fatalf("lines %q", got)
	}
	close(release)
}
