package boards

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrCPUList is returned (wrapped) for a malformed cpulist.
var ErrCPUList = errors.New("bad cpulist")

// maxCPU bounds parsed cpulists so a hostile range cannot exhaust memory.
const maxCPU = 1 << 16

// ParseCPUList parses the kernel's cpulist format ("0-2,5", "1", "" or
// "(null)" for none) into sorted, unique CPU numbers. Ranges with a stride
// ("0-7:2") are accepted as the kernel does.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "(null)" {
		return nil, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		rng, stride, hasStride := strings.Cut(part, ":")
		lo, hi, isRange := strings.Cut(rng, "-")
		a, err := cpuNum(lo)
		if err != nil {
			return nil, fmt.Errorf("boards: %w %q: %w", ErrCPUList, s, err)
		}
		b := a
		if isRange {
			if b, err = cpuNum(hi); err != nil {
				return nil, fmt.Errorf("boards: %w %q: %w", ErrCPUList, s, err)
			}
		}
		if b < a {
			return nil, fmt.Errorf("boards: %w %q: range %d-%d runs backwards", ErrCPUList, s, a, b)
		}
		step := 1
		if hasStride {
			// The kernel writes strides as "a-b:used/group"; accept "a-b:n" too.
			used, _, _ := strings.Cut(stride, "/")
			if step, err = strconv.Atoi(used); err != nil || step < 1 {
				return nil, fmt.Errorf("boards: %w %q: bad stride %q", ErrCPUList, s, stride)
			}
		}
		for c := a; c <= b; c += step {
			seen[c] = true
		}
	}
	out := make([]int, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Ints(out)
	return out, nil
}

func cpuNum(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("not a cpu number: %q", s)
	}
	if n < 0 || n >= maxCPU {
		return 0, fmt.Errorf("cpu %d out of range", n)
	}
	return n, nil
}

// ParseCPUMask parses a hex CPU mask as /proc/irq/default_smp_affinity writes
// it ("f", "00000000,00000003").
func ParseCPUMask(s string) ([]int, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	if s == "" {
		return nil, fmt.Errorf("boards: %w: empty mask", ErrCPUList)
	}
	var out []int
	for i := len(s) - 1; i >= 0; i-- {
		d, err := strconv.ParseUint(s[i:i+1], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("boards: %w: mask %q: %w", ErrCPUList, s, err)
		}
		base := (len(s) - 1 - i) * 4
		for bit := 0; bit < 4; bit++ {
			if d&(1<<bit) != 0 {
				out = append(out, base+bit)
			}
		}
	}
	return out, nil
}

// FormatCPUList writes CPU numbers in the kernel's cpulist format ("0-2,5").
func FormatCPUList(cpus []int) string {
	c := append([]int(nil), cpus...)
	sort.Ints(c)
	var b strings.Builder
	for i := 0; i < len(c); {
		j := i
		for j+1 < len(c) && c[j+1] <= c[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if c[j] == c[i] {
			b.WriteString(strconv.Itoa(c[i]))
		} else {
			fmt.Fprintf(&b, "%d-%d", c[i], c[j])
		}
		i = j + 1
	}
	return b.String()
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// intersect returns the members of a that are also in b, in a's order.
func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if containsInt(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// minus returns the members of a that are not in b.
func minus(a, b []int) []int {
	var out []int
	for _, x := range a {
		if !containsInt(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func sameInts(a, b []int) bool {
	return len(minus(a, b)) == 0 && len(minus(b, a)) == 0
}
