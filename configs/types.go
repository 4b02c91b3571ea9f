package configs

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Pos is a position in a config file. The zero Pos means "not from a file".
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return "<config>"
	case p.Line == 0:
		return p.File
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
}

// scalar is implemented by config types parsed from one YAML scalar.
type scalar interface {
	parseScalar(s string) error
}

// Duration is a time span written as "10ms", "250us", "1.5s".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) parseScalar(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a config duration. Unlike time.ParseDuration it
// requires a unit on every non-zero number and accepts "µs" and "us".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("duration %q has no unit (write e.g. %sms, %sus or %ss)", s, s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (write e.g. 10ms, 250us, 1.5s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// Size is a byte count written as "256Mi", "1Gi", "4096", "64k".
type Size int64

func (z *Size) parseScalar(s string) error {
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = Size(v)
	return nil
}

// ParseSize parses a byte count with an optional binary (Ki, Mi, Gi) or
// decimal (k, M, G) suffix.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q (write e.g. 256Mi, 1Gi or a byte count)", s)
	}
	return n * mult, nil
}

// CPUList is a set of CPU numbers, written as a cpulist ("0-1,3") or a YAML
// list of numbers.
type CPUList []int

func (c *CPUList) parseScalar(s string) error {
	v, err := ParseCPUList(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// String formats the list as a kernel cpulist ("0-1,3").
func (c CPUList) String() string {
	cpus := append([]int(nil), c...)
	sort.Ints(cpus)
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", cpus[i], cpus[j])
		} else {
			fmt.Fprintf(&b, "%d", cpus[i])
		}
		i = j + 1
	}
	return b.String()
}

// ParseCPUList parses a kernel cpulist such as "0-3,6".
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad cpulist %q: %q is not a CPU number (write e.g. \"2-3\" or \"1,3\")", s, part)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(strings.TrimSpace(hi))
			if err != nil || b < a {
				return nil, fmt.Errorf("bad cpulist %q: %q is not a range low-high", s, part)
			}
		}
		if b-a > 4096 {
			return nil, fmt.Errorf("bad cpulist %q: range %q is too large", s, part)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// Order is the byte/word order of a multi-register value: the letters name
// the bytes of the big-endian value in the order they appear on the wire.
type Order string

// The four orders.
const (
	ABCD Order = "ABCD" // big-endian words, big-endian bytes (Modbus standard)
	CDAB Order = "CDAB" // word-swapped
	BADC Order = "BADC" // byte-swapped
	DCBA Order = "DCBA" // little-endian
)

// Value is a scalar config value whose type depends on where it is used (an
// initial value, a block parameter, a safe-state value). It keeps its text
// and position so the user of the value reports type errors where it was
// written.
type Value struct {
	Pos Pos
	// Raw is the scalar as written; empty when the value was not set.
	Raw string
	// Set is true when the value appeared in the file.
	Set bool
}

func (v *Value) parseScalar(s string) error {
	v.Raw, v.Set = s, true
	return nil
}

// Float parses the value as a number ("true"/"false" are 1 and 0).
func (v Value) Float() (float64, error) {
	switch strings.ToLower(v.Raw) {
	case "true", "on", "yes":
		return 1, nil
	case "false", "off", "no":
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(v.Raw, "_", ""), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", v.Raw)
	}
	return f, nil
}

// Bool parses the value as a boolean (true/false, on/off, 1/0).
func (v Value) Bool() (bool, error) {
	switch strings.ToLower(v.Raw) {
	case "true", "on", "yes", "1":
		return true, nil
	case "false", "off", "no", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (write true or false)", v.Raw)
}

// Duration parses the value as a duration.
func (v Value) Duration() (time.Duration, error) { return ParseDuration(v.Raw) }

// Ref is a block input: a tag name, "block.port", or a literal number/bool.
type Ref struct {
	Pos Pos
	Raw string
}

func (r *Ref) parseScalar(s string) error {
	r.Raw = strings.TrimSpace(s)
	return nil
}

// Literal reports the value of a literal input ("1.5", "true").
func (r Ref) Literal() (float64, bool) {
	v := Value{Raw: r.Raw, Set: true}
	f, err := v.Float()
	return f, err == nil
}

// Block splits a "block.port" reference; ok is false for a tag or literal.
func (r Ref) Block() (block, port string, ok bool) {
	if _, lit := r.Literal(); lit {
		return "", "", false
	}
	return strings.Cut(r.Raw, ".")
}
