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
