package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many YAML nodes one decode visits, counting every
// expansion of an alias: a few hundred anchors aliasing each other
// ("billion laughs") would otherwise expand to billions of values.
const maxNodes = 100_000

// maxDepth bounds the nesting of aliases followed while decoding.
const maxDepth = 64

// Load reads, decodes, defaults and validates the control config at path.
// checks are further rules kept outside this package (blocks.Validate: the
// function blocks); they run on the decoded config, even one with problems,
// so every problem is reported at once as Errors, sorted by position.
func Load(path string, checks ...Check) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	return load(path, data, checks)
}

// LoadInPartition is Load inside the application kernel (mkrt-init): the
// files only the general side reads — TLS certificates and keys, password
// files — are not in the partition's image and are not looked for.
func LoadInPartition(path string, checks ...Check) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	return loadWith(path, data, checks, true)
}

// LoadBytes is Load for a config already in memory; name is the file name
// used in positions and as the base of relative paths.
func LoadBytes(name string, data []byte, checks ...Check) (*Config, error) {
	return load(name, data, checks)
}

func load(name string, data []byte, checks []Check) (*Config, error) {
	return loadWith(name, data, checks, false)
}

func loadWith(name string, data []byte, checks []Check, inPartition bool) (*Config, error) {
	c, errs := parse(name, data)
	if c == nil {
		return nil, errs.Err()
	}
	c.Defaults()
	var verrs Errors
	c.validate(&verrs, checks, inPartition)
	// A field that failed to decode keeps its zero value; do not report that
	// value again as a validation problem at the same place.
	bad := map[Pos]bool{}
	for _, e := range errs {
		bad[e.Pos] = true
	}
	undecoded := len(errs) > 0
	for _, e := range verrs {
		switch {
		case bad[e.Pos]:
		case e.Pos.Line == 0 && undecoded:
			// About a part that did not decode, already reported.
		case e.Pos.Line == 0:
			e.Pos = c.Pos
			errs = append(errs, e)
		default:
			errs = append(errs, e)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes a control config without filling defaults or validating
// it. name is the file name used in positions and as the base of relative
// paths. On error it returns nil and every problem found, as Errors.
func Parse(name string, data []byte) (*Config, error) {
	c, errs := parse(name, data)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// parse decodes data. It returns a nil config only when the YAML itself
// cannot be read; otherwise the config holds everything that decoded.
func parse(name string, data []byte) (c *Config, errs Errors) {
	defer func() {
		if r := recover(); r != nil {
			c = nil
			errs = Errors{{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: fmt.Sprintf("cannot read the file: %v (please report this as a bug with the file attached)", r)}}
		}
	}()
	start := Pos{File: name, Line: 1, Col: 1}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			errs.Add(start, "the file is empty (a config is a mapping with metadata, partition, devices, tags, tasks, ...)")
		} else {
			errs = append(errs, syntaxError(name, err))
		}
		return nil, errs
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		errs.Add(Pos{File: name, Line: max(extra.Line, 1), Col: max(extra.Column, 1)},
			"a second YAML document starts here; a config file holds one document (remove the \"---\" line or split the file)")
	case !errors.Is(err, io.EOF):
		errs = append(errs, syntaxError(name, err))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			errs.Add(start, "the file holds no config (a config is a mapping with metadata, partition, devices, tags, tasks, ...)")
			return nil, errs
		}
		root = root.Content[0]
	}
	c = &Config{where: newPositions(), dir: absDir(name)}
	d := &decoder{file: name, budget: maxNodes, where: c.where}
	d.decode(root, reflect.ValueOf(c).Elem(), "config")
	c.expandBlockTypes(&d.errs)
	c.resolvePaths()
	if c.Pos.Line == 0 {
		c.Pos = Pos{File: name, Line: max(root.Line, 1), Col: max(root.Column, 1)}
	}
	errs = append(errs, d.errs...)
	return c, errs
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a YAML parser error into a positioned Error.
func syntaxError(file string, err error) *Error {
	msg := err.Error()
	pos := Pos{File: file, Line: 1, Col: 1}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			pos.Line = n
		}
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{Pos: pos, Msg: "YAML syntax: " + msg + " (check the indentation and quoting here and on the line above)"}
}

// positions records where fields and map entries were written.
type positions struct {
	fields  map[any]Pos
	entries map[entryKey][2]Pos
}

type entryKey struct {
	m   unsafe.Pointer
	key string
}

func newPositions() *positions {
	return &positions{fields: map[any]Pos{}, entries: map[entryKey][2]Pos{}}
}

// FieldPos returns where the field that ptr points to was written in the
// config file (ptr is a pointer to a field of c, e.g. &c.Tasks[0].Period),
// or fallback when it was not written in a file.
func (c *Config) FieldPos(ptr any, fallback Pos) Pos {
	if c == nil || c.where == nil {
		return fallback
	}
	if p, ok := c.where.fields[ptr]; ok {
		return p
	}
	return fallback
}

// EntryPos returns where the key and the value of the entry key of the map
// m (a map field of c, e.g. c.Tasks[0].Blocks[1].Outputs) were written, or
// fallback for both when the entry was not written in a file.
func (c *Config) EntryPos(m any, key string, fallback Pos) (keyPos, valuePos Pos) {
	if c == nil || c.where == nil {
		return fallback, fallback
	}
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.IsNil() {
		return fallback, fallback
	}
	p, ok := c.where.entries[entryKey{v.UnsafePointer(), key}]
	if !ok {
		return fallback, fallback
	}
	return p[0], p[1]
}

// ResolvePath returns p resolved against the config file's directory when
// it is relative.
func (c *Config) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || c == nil || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// decoder decodes a yaml.Node tree into the config structs by reflection,
// collecting every problem.
type decoder struct {
	file   string
	errs   Errors
	where  *positions
	budget int
	depth  int
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs.Add(d.pos(n), format, args...)
}

var (
	posType     = reflect.TypeOf(Pos{})
	scalarType  = reflect.TypeOf((*scalar)(nil)).Elem()
	cpuListType = reflect.TypeOf(CPUList{})
)

// what describes a node's kind for "expected X, got Y" messages.
func what(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if len(n.Value) > 40 {
		return strconv.Quote(n.Value[:40] + "…")
	}
	return strconv.Quote(n.Value)
}

// expectation says, for a config type, what the YAML should hold.
func expectation(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(Duration(0)):
		return "a duration such as 10ms or 250us"
	case reflect.TypeOf(Size(0)):
		return "a size such as 256Mi or 4096"
	case cpuListType:
		return "a cpulist such as \"2-3\" or a list of CPU numbers"
	case reflect.TypeOf(Value{}):
		return "a single value (a number, true/false or text)"
	case reflect.TypeOf(Ref{}):
		return "a tag name, block.port or a literal"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping of key: value"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a text value"
	}
	return "a value"
}

func (d *decoder) mismatch(n *yaml.Node, key string, t reflect.Type) {
	d.errorf(n, "%s: expected %s, got %s", key, expectation(t), what(n))
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// spend takes cost from the node budget; it reports (once) and returns
// false when the budget is exhausted.
func (d *decoder) spend(n *yaml.Node, cost int) bool {
	if d.budget <= 0 {
		return false
	}
	d.budget -= cost
	if d.budget <= 0 {
		d.errorf(n, "the file expands to more than %d values through aliases (*name) and merges (<<); use fewer, smaller anchors", maxNodes)
		return false
	}
	return true
}

// decode stores node n into v; key names the place for messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, key string) {
	if !d.spend(n, 1) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.depth >= maxDepth {
			d.errorf(n, "%s: alias *%s nests too deep or points nowhere; write the value out", key, n.Value)
			return
		}
		d.depth++
		d.decode(n.Alias, v, key)
		d.depth--
		return
	}
	if isNull(n) {
		return // null leaves the zero value, which is the default
	}
	if v.CanAddr() && reflect.PointerTo(v.Type()).Implements(scalarType) {
		d.decodeScalarType(n, v, key)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		d.decode(n, e.Elem(), key)
		v.Set(e)
	case reflect.Struct:
		d.decodeStruct(n, v, key)
	case reflect.Map:
		d.decodeMap(n, v, key)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.mismatch(n, key, v.Type())
			return
		}
		if len(n.Content) == 0 {
			return // an empty list is no list
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
		}
		v.Set(s)
	default:
		d.decodeBasic(n, v, key)
	}
}

func (d *decoder) decodeScalarType(n *yaml.Node, v reflect.Value, key string) {
	if v.Type() == cpuListType && n.Kind == yaml.SequenceNode {
		var cpus CPUList
		for i, item := range n.Content {
			var cpu int
			d.decode(item, reflect.ValueOf(&cpu).Elem(), fmt.Sprintf("%s[%d]", key, i))
			cpus = append(cpus, cpu)
		}
		v.Set(reflect.ValueOf(cpus))
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.mismatch(n, key, v.Type())
		return
	}
	if err := v.Addr().Interface().(scalar).parseScalar(n.Value); err != nil {
		d.errorf(n, "%s: %v", key, err)
		return
	}
	switch x := v.Addr().Interface().(type) {
	case *Value:
		x.Pos = d.pos(n)
	case *Ref:
		x.Pos = d.pos(n)
	}
}

// numberText strips the digit separators YAML allows and reports whether
// the scalar was quoted, which makes it text rather than a number.
func numberText(n *yaml.Node) (string, bool) {
	return strings.ReplaceAll(n.Value, "_", ""), n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0
}

// special reports YAML's infinities and not-a-number (.inf, -.inf, .nan).
func special(n *yaml.Node) bool {
	switch strings.ToLower(n.Value) {
	case ".inf", "+.inf", "-.inf", ".nan":
		return n.ShortTag() == "!!float"
	}
	return false
}

func parseInt(s string, bits int) (int64, error) {
	base := 10
	neg := strings.HasPrefix(s, "-")
	t := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	switch {
	case strings.HasPrefix(t, "0x"), strings.HasPrefix(t, "0X"):
		base, t = 16, t[2:]
	case strings.HasPrefix(t, "0o"), strings.HasPrefix(t, "0O"):
		base, t = 8, t[2:]
	case strings.HasPrefix(t, "0b"), strings.HasPrefix(t, "0B"):
		base, t = 2, t[2:]
	}
	if neg {
		t = "-" + t
	}
	return strconv.ParseInt(t, base, bits)
}

func (d *decoder) decodeBasic(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.ScalarNode {
		d.mismatch(n, key, v.Type())
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		if n.ShortTag() != "!!bool" {
			d.errorf(n, "%s: expected true or false, got %s", key, what(n))
			return
		}
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err != nil {
			d.errorf(n, "%s: expected true or false, got %s", key, what(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s, quoted := numberText(n)
		i, err := parseInt(s, v.Type().Bits())
		switch {
		case quoted && err == nil:
			d.errorf(n, "%s: expected a whole number, got the text %s (remove the quotes)", key, what(n))
		case err != nil && errors.Is(err, strconv.ErrRange):
			d.errorf(n, "%s: %s is out of range", key, n.Value)
		case err != nil:
			d.errorf(n, "%s: expected a whole number, got %s", key, what(n))
		default:
			v.SetInt(i)
		}
	case reflect.Float32, reflect.Float64:
		s, quoted := numberText(n)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			if i, ierr := parseInt(s, 64); ierr == nil {
				f, err = float64(i), nil
			}
		}
		switch {
		case special(n):
			d.errorf(n, "%s: expected a finite number, got %s", key, what(n))
		case quoted && err == nil:
			d.errorf(n, "%s: expected a number, got the text %s (remove the quotes)", key, what(n))
		case err != nil:
			d.errorf(n, "%s: expected a number, got %s", key, what(n))
		case math.IsNaN(f) || math.IsInf(f, 0):
			d.errorf(n, "%s: expected a finite number, got %s", key, what(n))
		default:
			v.SetFloat(f)
		}
	default:
		d.errorf(n, "%s: cannot be set from a config file", key)
	}
}

// pair is one key: value of a mapping.
type pair struct {
	name     string
	key, val *yaml.Node
}

// pairs lists a mapping's entries with merge keys ("<<: *base") applied:
// keys written in the mapping win over merged ones, and earlier merged
// mappings win over later ones. Duplicate keys are reported.
func (d *decoder) pairs(n *yaml.Node, key string) []pair {
	var out []pair
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: a key must be a plain name, got %s", key, what(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, "%s: duplicate key %q (first written at line %d); remove one", key, k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k.Value, k, val})
	}
	for _, m := range merges {
		var sources []*yaml.Node
		m = d.resolve(m)
		switch {
		case m == nil:
		case m.Kind == yaml.MappingNode:
			sources = []*yaml.Node{m}
		case m.Kind == yaml.SequenceNode:
			for _, s := range m.Content {
				if s = d.resolve(s); s != nil && s.Kind == yaml.MappingNode {
					sources = append(sources, s)
				} else if s != nil {
					d.errorf(s, "%s: \"<<\" merges mappings only, got %s", key, what(s))
				}
			}
		default:
			d.errorf(m, "%s: \"<<\" merges mappings only, got %s", key, what(m))
		}
		for _, s := range sources {
			if !d.spend(s, len(s.Content)/2+1) {
				break
			}
			if d.depth >= maxDepth {
				d.errorf(s, "%s: merges nest too deep; write the values out", key)
				break
			}
			d.depth++
			for _, p := range d.pairs(s, key) {
				if _, dup := seen[p.name]; !dup {
					seen[p.name] = p.key
					out = append(out, p)
				}
			}
			d.depth--
		}
	}
	return out
}

// resolve follows an alias.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// field is one YAML key of a config struct.
type field struct {
	name     string
	index    int
	required bool
	doc      string
}

// fieldsOf lists the YAML keys of a config struct, in declaration order.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		out = append(out, field{name: name, index: i, required: f.Tag.Get("required") == "true", doc: f.Tag.Get("doc")})
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string) {
	if f := v.FieldByName("Pos"); f.IsValid() && f.Type() == posType {
		f.Set(reflect.ValueOf(d.pos(n)))
	}
	if n.Kind != yaml.MappingNode {
		d.mismatch(n, key, v.Type())
		return
	}
	fields := fieldsOf(v.Type())
	byName := map[string]field{}
	names := make([]string, len(fields))
	for i, f := range fields {
		byName[f.name] = f
		names[i] = f.name
	}
	present := map[string]bool{}
	for _, p := range d.pairs(n, key) {
		f, ok := byName[p.name]
		if !ok {
			d.errorf(p.key, "%s", unknownKey(key, p.name, names))
			continue
		}
		present[p.name] = true
		fv := v.Field(f.index)
		d.where.fields[fv.Addr().Interface()] = d.pos(p.val)
		d.decode(p.val, fv, p.name)
	}
	// A missing text or duration is caught by Validate as an empty value;
	// a missing number cannot be told from 0 afterwards, so check it here.
	for _, f := range fields {
		if f.required && !present[f.name] && v.Field(f.index).Kind() == reflect.Int {
			d.errorf(n, "%s: missing %s: %s", key, f.name, f.doc)
		}
	}
}

func unknownKey(where, name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("%s: unknown key %q (did you mean %q?)", where, name, s)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return fmt.Sprintf("%s: unknown key %q (known keys: %s)", where, name, strings.Join(sorted, ", "))
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.mismatch(n, key, v.Type())
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errorf(n, "%s: cannot be set from a config file", key)
		return
	}
	if len(n.Content) == 0 {
		return // an empty mapping is no mapping
	}
	m := reflect.MakeMap(v.Type())
	ptr := m.UnsafePointer()
	for _, p := range d.pairs(n, key) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(p.val, e, key+"."+p.name)
		k := reflect.New(v.Type().Key()).Elem()
		k.SetString(p.name)
		m.SetMapIndex(k, e)
		d.where.entries[entryKey{ptr, p.name}] = [2]Pos{d.pos(p.key), d.pos(p.val)}
	}
	v.Set(m)
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, or "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", len(s)/3+2
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
