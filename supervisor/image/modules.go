package image

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// ModuleDeps is a kernel's modules.dep: for each module path (relative to
// /lib/modules/<release>), the modules it needs, as the file lists them.
type ModuleDeps struct {
	deps   map[string][]string
	byName map[string]string // module name ("virtio_net") -> path
}

// ParseModulesDep reads modules.dep ("path: dep dep ...").
func ParseModulesDep(r io.Reader) (*ModuleDeps, error) {
	m := &ModuleDeps{deps: map[string][]string{}, byName: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("image: modules.dep line %d: no ':' in %q", line, text)
		}
		mod = strings.TrimSpace(mod)
		m.deps[mod] = strings.Fields(rest)
		m.byName[ModuleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("image: reading modules.dep: %w", err)
	}
	return m, nil
}

// ModuleName is the name the kernel knows a module file by: the base name
// without extensions, with '-' folded to '_'.
func ModuleName(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// Has reports whether the kernel ships the named module.
func (m *ModuleDeps) Has(name string) bool {
	_, ok := m.byName[ModuleName(name)]
	return ok
}

// Resolve returns the module files needed for names, dependencies first, in
// an order in which each can be loaded. Names the kernel does not ship as
// modules are returned in missing (they may be built in).
func (m *ModuleDeps) Resolve(names []string) (order, missing []string) {
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		// modules.dep lists dependencies so that the last must load first.
		deps := m.deps[p]
		for i := len(deps) - 1; i >= 0; i-- {
			visit(deps[i])
		}
		order = append(order, p)
	}
	for _, n := range names {
		p, ok := m.byName[ModuleName(n)]
		if !ok {
			missing = append(missing, n)
			continue
		}
		visit(p)
	}
	sort.Strings(missing)
	return order, missing
}
