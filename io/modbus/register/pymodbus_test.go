package register_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/io/modbus/register"
	"github.com/mkrt/mkrt/shm/tag"
)

// Debian's python3-pymodbus is installed for the system interpreter; the
// python3 on PATH may be another build that cannot import it.
const systemPython = "/usr/bin/python3"

// peerCase is one value for testdata/payload.py, with the registers this
// package encodes it as.
type peerCase struct {
	Type  tag.DataType  `json:"type"`
	Order configs.Order `json:"order"`
	Int   int64         `json:"int"`   // bool and integers
	Float string        `json:"float"` // floats: binary64 bits, hex
	Text  string        `json:"text"`  // strings, ASCII
	N     int           `json:"n"`     // registers
	Regs  []uint16      `json:"regs"`
}

// peerResult is pymodbus's answer: the registers its BinaryPayloadBuilder
// makes of the value, and the value its BinaryPayloadDecoder reads from the
// case's registers.
type peerResult struct {
	Regs  []uint16 `json:"regs"`
	Int   int64    `json:"int"`
	Float string   `json:"float"`
	Text  string   `json:"text"`
}

func floatHex(v float64) string { return fmt.Sprintf("%016x", math.Float64bits(v)) }

// value is the case's value as this package's raw value.
func (c *peerCase) value() float64 {
	if c.Float != "" {
		bits, _ := strconv.ParseUint(c.Float, 16, 64)
		return math.Float64frombits(bits)
	}
	return float64(c.Int)
}

func (c *peerCase) String() string {
	switch {
	case c.Type == tag.String:
		return fmt.Sprintf("%s %s %q", c.Type, c.Order, c.Text)
	case c.Float != "":
		return fmt.Sprintf("%s %s %v", c.Type, c.Order, c.value())
	}
	return fmt.Sprintf("%s %s %d", c.Type, c.Order, c.Int)
}

// peerCases is every edge value of every type in every order (the ASCII
// ones for strings), with the registers this package encodes it as.
func peerCases() []peerCase {
	var cases []peerCase
	for _, o := range orders {
		for _, typ := range tag.DataTypes {
			for _, v := range edges[typ] {
				c := peerCase{Type: typ, Order: o, Int: int64(v), N: typ.Registers(0)}
				if typ == tag.Float32 || typ == tag.Float64 {
					c.Int, c.Float = 0, floatHex(v)
				}
				cases = append(cases, c)
			}
		}
		for _, s := range edgeTexts {
			if strings.IndexFunc(s.text, func(r rune) bool { return r > unicode.MaxASCII }) < 0 {
				cases = append(cases, peerCase{Type: tag.String, Order: o, Text: s.text, N: s.n})
			}
		}
	}
	for i := range cases {
		c := &cases[i]
		wire := make([]byte, 2*c.N)
		if c.Type == tag.String {
			register.EncodeString(wire, c.Order, c.Text)
		} else {
			register.Encode(wire, c.Type, c.Order, c.value())
		}
		c.Regs = make([]uint16, c.N)
		register.FromBytes(c.Regs, wire)
	}
	return cases
}

// runPayload runs testdata/payload.py on the cases; it skips the test when
// the system Python or its pymodbus is missing.
func runPayload(t *testing.T, cases []peerCase) []peerResult {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Skipf("skipping: no %s for the pymodbus reference: %v", systemPython, err)
	}
	if out, err := exec.Command(systemPython, "-c", "import pymodbus.payload, pymodbus.constants").CombinedOutput(); err != nil {
		t.Skipf("skipping: %s cannot import pymodbus (install python3-pymodbus): %v\n%s", systemPython, err, out)
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(systemPython, "testdata/payload.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/payload.py: %v\n%s", err, stderr.Bytes())
	}
	var res []peerResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("testdata/payload.py answer: %v\n%s", err, out)
	}
	if len(res) != len(cases) {
		t.Fatalf("testdata/payload.py answered %d cases of %d", len(res), len(cases))
	}
	return res
}

// TestPymodbusPayload compares the codec with an independent one, pymodbus's
// BinaryPayloadBuilder and BinaryPayloadDecoder, for every type in every
// order, both ways: the registers each side makes of the same value must be
// the same, this package must read pymodbus's registers as the value, and
// pymodbus must read this package's registers as the value.
func TestPymodbusPayload(t *testing.T) {
	cases := peerCases()
	res := runPayload(t, cases)
	for i := range cases {
		c, r := &cases[i], &res[i]
		if !slices.Equal(r.Regs, c.Regs) {
			t.Errorf("%v: pymodbus builds %04x, this package %04x", c, r.Regs, c.Regs)
		}
		wire := make([]byte, 2*len(r.Regs))
		register.ToBytes(wire, r.Regs)
		switch {
		case c.Type == tag.String:
			if got := register.DecodeString(wire, c.Order, 2*c.N, ""); got != c.Text {
				t.Errorf("%v: this package reads pymodbus's %04x as %q", c, r.Regs, got)
			}
			if r.Text != c.Text {
				t.Errorf("%v: pymodbus reads this package's %04x as %q", c, c.Regs, r.Text)
			}
		default:
			if got, err := register.Decode(wire, c.Type, c.Order); !same(got, err, c.value()) {
				t.Errorf("%v: this package reads pymodbus's %04x as %v (%v)", c, r.Regs, got, err)
			}
			if c.Float != "" && r.Float != c.Float || c.Float == "" && r.Int != c.Int {
				t.Errorf("%v: pymodbus reads this package's %04x as int %d float %s", c, c.Regs, r.Int, r.Float)
			}
		}
	}
	t.Logf("%d values compared with pymodbus both ways", len(cases))
}
