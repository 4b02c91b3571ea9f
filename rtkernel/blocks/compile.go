package blocks

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
	"github.com/mkrt/mkrt/shm/tag"
)

// srcKind is where a block input comes from.
type srcKind uint8

const (
	srcNone  srcKind = iota // not wired: reads 0
	srcLit                  // a literal
	srcTag                  // a tag read at cycle start
	srcBlock                // another block's output in the same task
	srcExpr                 // an expression (ex)
)

// source is one resolved block input.
type source struct {
	kind srcKind
	lit  float64
	tag  tag.ID
	from *node
	port int
	name string // the input port's name
	pos  configs.Pos
	raw  string   // a literal as written
	ex   *exprSrc // srcExpr
}

// deps calls f with every source behind s: s itself, or the names of its
// expression.
func (s *source) deps(f func(*source)) {
	if s.kind != srcExpr {
		f(s)
		return
	}
	for i := range s.ex.leaves {
		s.ex.leaves[i].deps(f)
	}
}

// node is one block being compiled.
type node struct {
	b      *configs.Block
	task   int
	idx    int // index within the task
	typ    *blockType
	params []float64 // parameters, then scratch
	ins    []source  // fixed inputs in type order, then in1..inN
	outTag []tag.ID  // per output port; -1 when not written to a tag
	ex     *exprSrc  // an expr block's expression, a standard function's formula
	// compiled layout
	outReg int32
	// gate: the sequence whose steps enable the block, and its output port
	// that does (sequence.go); nil: the block always runs.
	gate     *node
	gatePort int
}

// writer is the block output that writes a tag.
type writer struct {
	n    *node
	port int
}

type compiler struct {
	cfg *configs.Config
	tab *tag.Table
	// errs are the problems with the blocks' types, ports, parameters,
	// units and loops: the catalogue's rules, which Validate reports.
	errs configs.Errors
	// structural are the problems with names and with what the blocks read
	// and write (tags and blocks that do not exist or may not be written,
	// two writers of a tag): configs.Validate reports them in its own words,
	// so only Compile, which may be given a config never validated, does.
	structural configs.Errors
	nodes      [][]*node // per task
	orders     [][]*node // per task, in dependency order
	byName     map[string]*node
	writers    map[tag.ID]writer
	units      map[[2]int]string // memo of output units, by node id and port
	unitIDs    map[*node]int
	// later are bool checks against outputs whose kind follows their inputs
	// (delay, select), made once every input is resolved.
	later []func()
	exprs []*exprSrc          // every expression, compiled after the wiring
	files map[string][]string // config files read for expression positions
}

// Validate checks every function block of cfg against the catalogue: its
// type, its ports and what they carry, its parameters, the units its ports
// share, and the loops of each task. It returns every problem as
// configs.Errors, each at the block, input or parameter at fault, or nil.
// It is the configs.Check of the blocks: pass it to configs.Load so that
// its problems are reported with the config's own, in file order. Names,
// and what the blocks read and write, are configs' own rules; Validate
// does not report them again.
func Validate(cfg *configs.Config) error {
	if cfg == nil {
		return errors.New("blocks: Validate needs a config")
	}
	return append(check(cfg, validationTable(cfg)).errs, typeNameClashes(cfg)...).Err()
}

// validationTable numbers cfg's tags for Validate: the first of a name
// used twice (configs reports the second).
func validationTable(cfg *configs.Config) *tag.Table {
	var infos []tag.Info
	seen := map[string]bool{}
	for _, in := range cfg.TagDirectory() {
		if !seen[in.Name] {
			seen[in.Name] = true
			infos = append(infos, in)
		}
	}
	tab, err := tag.NewTable(infos)
	if err != nil {
		panic("blocks: " + err.Error()) // the names are unique
	}
	return tab
}

// Compile builds every task's program from the config; tab numbers the tags
// (tag.NewTable of the same config). It checks the blocks as Validate does,
// and their names and wiring as configs.Validate does, and reports every
// problem at once as configs.Errors, each at the position of the offending
// block, input or parameter, with the fix.
func Compile(cfg *configs.Config, tab *tag.Table) (*Program, error) {
	if cfg == nil || tab == nil {
		return nil, errors.New("blocks: Compile needs a config and its tag table")
	}
	c := check(cfg, tab)
	errs := append(c.errs, c.structural...)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	prog := &Program{byName: map[string]*TaskProgram{}}
	for ti := range cfg.Tasks {
		tp := c.emit(ti, c.orders[ti])
		tp.loc = location(cfg) // process.go
		prog.tasks = append(prog.tasks, tp)
		prog.byName[tp.name] = tp
	}
	return prog, nil
}

// check runs every rule over the config's blocks and orders each task.
func check(cfg *configs.Config, tab *tag.Table) *compiler {
	c := &compiler{cfg: cfg, tab: tab, byName: map[string]*node{}, writers: map[tag.ID]writer{},
		units: map[[2]int]string{}, unitIDs: map[*node]int{}}
	c.collect()
	c.outputs()
	c.inputs()
	c.sequences()
	c.processChecks() // process.go
	for _, check := range c.later {
		check()
	}
	for _, es := range c.exprs {
		c.compileExpr(es)
	}
	c.checkUnits()
	for ti := range cfg.Tasks {
		c.orders = append(c.orders, c.order(ti))
	}
	return c
}

// valuePos is p, the position of the value of entry key of the map m (a
// block's inputs or params), or where the entry was written when the value
// has none (a null), or fallback.
func (c *compiler) valuePos(m any, key string, p, fallback configs.Pos) configs.Pos {
	if p != (configs.Pos{}) {
		return p
	}
	_, v := c.cfg.EntryPos(m, key, fallback)
	return v
}

func (n *node) what() string { return fmt.Sprintf("%s block %q", n.typ.Name, n.b.Name) }

// collect finds every block's type and parameters.
func (c *compiler) collect() {
	c.nodes = make([][]*node, len(c.cfg.Tasks))
	for ti := range c.cfg.Tasks {
		t := &c.cfg.Tasks[ti]
		for bi := range t.Blocks {
			b := &t.Blocks[bi]
			n := &node{b: b, task: ti, idx: bi}
			c.unitIDs[n] = len(c.unitIDs)
			if b.Name == "" {
				c.structural.Add(b.Pos, "block has no name (add name: ...)")
			} else if strings.ContainsAny(b.Name, ". \t") {
				c.structural.Add(b.Pos, "block name %q may not contain '.' or spaces (inputs refer to outputs as block.port)", b.Name)
			} else if prev, dup := c.byName[b.Name]; dup {
				c.structural.Add(b.Pos, "block name %q is already used at %s (block names are unique across the config)", b.Name, prev.b.Pos)
			} else {
				c.byName[b.Name] = n
			}
			typ, ok := byType[b.Type]
			if !ok {
				errs := &c.errs
				if b.Type == "" {
					errs = &c.structural // configs: missing type
				}
				errs.Add(c.cfg.FieldPos(&b.Type, b.Pos), "block %s: unknown block type %q%s (one of %s)",
					b.Name, b.Type, configs.DidYouMean(b.Type, typeNames), strings.Join(typeNames, ", "))
			} else {
				n.typ = typ
				switch {
				case typ.Expression && strings.TrimSpace(b.Expr.Raw) == "":
					c.errs.Add(b.Pos, "%s needs its expression (add expr: \"a * b + c\")", n.what())
				case !typ.Expression && b.Expr.Raw != "":
					c.errs.Add(c.valuePos(nil, "", b.Expr.Pos, b.Pos), "%s takes no expr: (only expr blocks do; an input may be an expression)", n.what())
				}
				n.outTag = make([]tag.ID, len(typ.Outputs))
				for k := range n.outTag {
					n.outTag[k] = -1
				}
				c.params(n)
			}
			c.nodes[ti] = append(c.nodes[ti], n)
		}
	}
}

// params parses and checks a block's parameters.
func (c *compiler) params(n *node) {
	typ, b := n.typ, n.b
	n.params = make([]float64, len(typ.Params)+typ.scratch)
	ok := true
	for _, key := range sortedKeys(b.Params) {
		v := b.Params[key]
		k := slices.IndexFunc(typ.Params, func(p configs.BlockParam) bool { return p.Name == key })
		if k < 0 {
			c.errs.Add(c.valuePos(b.Params, key, v.Pos, b.Pos), "%s has no parameter %q (parameters: %s)", n.what(), key, paramNames(typ))
			ok = false
			continue
		}
		f, msg := parseParam(&typ.Params[k], v)
		if typ.Params[k].Kind == configs.ParamRatio && msg == "" && !isNumber(v.Raw) {
			n.params[len(typ.Params)] = f // a time constant, not a ratio
			n.params[k] = typ.Params[k].Default
			continue
		}
		if msg != "" {
			c.errs.Add(c.valuePos(b.Params, key, v.Pos, b.Pos), "parameter %q of %s %s", key, n.what(), msg)
			ok = false
			continue
		}
		n.params[k] = f
	}
	for k, p := range typ.Params {
		if _, set := b.Params[p.Name]; set {
			continue
		}
		if p.Required {
			c.errs.Add(b.Pos, "%s needs parameter %q (add params: {%s: ...})", n.what(), p.Name, p.Name)
			ok = false
		}
		n.params[k] = p.Default // NaN when optional
	}
	if typ.op == opLag {
		n.params[1] = -1 // no cached coefficient yet
	}
	if ok && typ.check != nil {
		if name, msg := typ.check(n.params); msg != "" {
			pos := b.Pos
			if v, set := b.Params[name]; set {
				pos = c.valuePos(b.Params, name, v.Pos, b.Pos)
			}
			c.errs.Add(pos, "%s: %s", n.what(), msg)
		}
	}
}

func paramNames(typ *blockType) string {
	if len(typ.Params) == 0 {
		return "none"
	}
	names := make([]string, len(typ.Params))
	for i, p := range typ.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// parseParam reads one parameter value as its kind says it is written,
// into the value the program carries; msg says what is wrong and the fix.
// It is the one reading of a parameter: the compiler's and a live change's
// (ParamValue).
func parseParam(p *configs.BlockParam, v configs.Value) (float64, string) {
	raw := strings.TrimSpace(v.Raw)
	switch p.Kind {
	case configs.ParamDuration:
		d, err := configs.ParseDuration(raw)
		if err != nil {
			return 0, "is a time: " + err.Error()
		}
		return d.Seconds(), ""
	case configs.ParamBool:
		b, err := v.Bool()
		if err != nil {
			return 0, "is a bool: " + err.Error()
		}
		return b2f(b), ""
	case configs.ParamValue:
		f, err := v.Float()
		if err != nil || math.IsNaN(f) {
			return 0, fmt.Sprintf("must be a number, true or false, not %q", raw)
		}
		return f, ""
	case configs.ParamRatio:
		if isNumber(raw) {
			break
		}
		d, err := configs.ParseDuration(raw)
		if err != nil || d <= 0 {
			return 0, fmt.Sprintf("must be a ratio above 0 (e.g. 10) or a filter time above 0 (e.g. 1s), not %q", raw)
		}
		return d.Seconds(), ""
	case configs.ParamEnum:
		if k := slices.Index(p.Enum, raw); k >= 0 {
			return float64(k), ""
		}
		return 0, fmt.Sprintf("must be one of %s, not %q", strings.Join(p.Enum, ", "), raw)
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(raw, "_", ""), 64)
	if err != nil || math.IsNaN(f) {
		if _, derr := configs.ParseDuration(raw); derr == nil && raw != "0" {
			return 0, fmt.Sprintf("is a number, not a time: write %q without a unit", raw)
		}
		return 0, fmt.Sprintf("must be a number, not %q", raw)
	}
	if p.Kind == configs.ParamNonNeg && f < 0 {
		return 0, fmt.Sprintf("must be 0 or more, not %s", raw)
	}
	if p.Kind == configs.ParamRatio && f <= 0 {
		return 0, fmt.Sprintf("must be above 0, not %s", raw)
	}
	return f, ""
}

// isNumber reports whether a parameter is written as a plain number.
func isNumber(raw string) bool {
	_, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(raw), "_", ""), 64)
	return err == nil
}

// outputs records which block output writes which tag.
func (c *compiler) outputs() {
	for _, nodes := range c.nodes {
		for _, n := range nodes {
			if n.typ == nil {
				continue
			}
			for _, key := range sortedKeys(n.b.Outputs) {
				name := strings.TrimSpace(n.b.Outputs[key])
				k := slices.IndexFunc(n.typ.Outputs, func(p configs.BlockPort) bool { return p.Name == key })
				if k < 0 {
					c.errs.Add(n.b.Pos, "%s has no output %q (outputs: %s)", n.what(), key, portNames(n.typ.Outputs))
					continue
				}
				id, ok := c.tab.Lookup(name)
				if !ok {
					c.structural.Add(n.b.Pos, "output %q of %s writes unknown tag %q (declare it under tags:)", key, n.what(), name)
					continue
				}
				info := c.tab.Info[id]
				switch {
				case info.Type == tag.String && !n.typ.writesText(k):
					c.errs.Add(n.b.Pos, "output %q of %s writes string tag %q (blocks write number and bool tags)", key, n.what(), name)
					continue
				case info.Type == tag.Bool && n.typ.KindFrom != nil:
					n, key, name := n, key, name
					c.later = append(c.later, func() {
						if !c.boolOut(n, k, 0) {
							c.errs.Add(n.b.Pos, "output %q of %s is a number but tag %q is a bool (write a number tag, or turn the value into a bool with compare or hysteresis)", key, n.what(), name)
						}
					})
				case info.Type == tag.Bool && n.typ.Outputs[k].Kind != boolean:
					c.errs.Add(n.b.Pos, "output %q of %s is a number but tag %q is a bool (write a number tag, or turn the value into a bool with compare or hysteresis)", key, n.what(), name)
					continue
				case info.Device != "" && !info.Access.Writable():
					c.structural.Add(n.b.Pos, "output %q of %s writes tag %q, which is read from device %q (write an internal tag or a writable device tag)", key, n.what(), name, info.Device)
					continue
				}
				if w, dup := c.writers[id]; dup {
					c.structural.Add(n.b.Pos, "output %q of %s writes tag %q, which %s.%s already writes (a tag has one writer)", key, n.what(), name, w.n.b.Name, w.n.typ.Outputs[w.port].Name)
					continue
				}
				c.writers[id] = writer{n: n, port: k}
				n.outTag[k] = id
			}
		}
	}
}

func portNames(ps []configs.BlockPort) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// inputs resolves every block input.
func (c *compiler) inputs() {
	for _, nodes := range c.nodes {
		for _, n := range nodes {
			if n.typ != nil {
				c.wire(n)
				c.wireExpr(n)
			}
		}
	}
}

// wire resolves one block's inputs and checks the required ones are there.
func (c *compiler) wire(n *node) {
	typ, b := n.typ, n.b
	n.ins = make([]source, len(typ.Inputs))
	for k, p := range typ.Inputs {
		n.ins[k].name = p.Name
	}
	vars := map[int]configs.Ref{}
	for _, key := range sortedKeys(b.Inputs) {
		ref := b.Inputs[key]
		if k := slices.IndexFunc(typ.Inputs, func(p configs.BlockPort) bool { return p.Name == key }); k >= 0 {
			n.ins[k] = c.resolve(n, key, typ.Inputs[k].Kind, ref)
			continue
		}
		if i, ok := variadicIndex(key); ok && typ.Variadic {
			vars[i] = ref
			continue
		}
		want := portNames(typ.Inputs)
		if typ.Variadic {
			want = "in1, in2, ..."
		}
		c.errs.Add(c.valuePos(b.Inputs, key, ref.Pos, b.Pos), "%s has no input %q (inputs: %s)", n.what(), key, want)
	}
	wired := func(name string) bool { _, ok := b.Inputs[name]; return ok }
	for _, p := range typ.Inputs {
		if p.Required && !wired(p.Name) {
			c.errs.Add(b.Pos, "%s needs input %q (add inputs: {%s: <tag, block.port or number>})", n.what(), p.Name, p.Name)
		}
	}
	for _, pair := range typ.InputNeeds {
		if wired(pair[0]) && !wired(pair[1]) {
			c.errs.Add(b.Pos, "%s has input %s but no %s (wire %s too)", n.what(), pair[0], pair[1], pair[1])
		}
	}
	if len(typ.AnyInput) > 0 && !slices.ContainsFunc(typ.AnyInput, wired) {
		c.errs.Add(b.Pos, "%s needs input %s (add inputs: {%s: <tag, block.port or literal>})", n.what(), strings.Join(typ.AnyInput, " or "), typ.AnyInput[0])
	}
	if typ.op == opLimit { // scratch: which of mn, mx is wired
		n.params[2], n.params[3] = b2f(wired("mn")), b2f(wired("mx"))
	}
	if typ.op == opPID { // scratch: whether ext_reset is wired
		n.params[pidExtReset] = b2f(wired("ext_reset"))
	}
	if typ.op == opIntegrator { // scratch: the retain tag out writes (process.go)
		n.params[len(typ.Params)] = c.retainTag(n, 0)
	}
	if !typ.Variadic {
		return
	}
	for i := 1; i <= len(vars); i++ {
		ref, ok := vars[i]
		if !ok {
			c.errs.Add(b.Pos, "%s has %d inputs but no in%d (number them in1..in%d without gaps)", n.what(), len(vars), i, len(vars))
			return
		}
		n.ins = append(n.ins, c.resolve(n, "in"+strconv.Itoa(i), typ.VariadicKind, ref))
	}
	if len(vars) < typ.MinInputs {
		c.errs.Add(b.Pos, "%s needs at least %d inputs in1..in%d", n.what(), typ.MinInputs, typ.MinInputs)
	}
}

// wireExpr records the expression of an expr block or the formula of a
// standard function block, over the block's inputs.
func (c *compiler) wireExpr(n *node) {
	typ, b := n.typ, n.b
	if !typ.Expression && typ.formula == nil {
		return
	}
	local := map[string]source{}
	for i, s := range n.ins {
		if s.kind != srcNone {
			local[s.name] = n.ins[i]
		}
	}
	if typ.Expression {
		if strings.TrimSpace(b.Expr.Raw) == "" {
			return
		}
		n.ex = c.newExpr(&exprSrc{n: n, src: b.Expr.Raw, pos: c.valuePos(nil, "", b.Expr.Pos, b.Pos), what: "expr of " + n.what(), local: local})
		return
	}
	nvar := len(n.ins) - len(typ.Inputs)
	if len(n.ins) < len(typ.Inputs)+typ.MinInputs || len(local) < len(n.ins) {
		return // a missing or unresolved input is already reported
	}
	n.ex = c.newExpr(&exprSrc{n: n, src: typ.formula(nvar), pos: b.Pos, what: n.what(), local: local, formula: true})
}

// variadicIndex parses "in<N>" with N >= 1.
func variadicIndex(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, "in")
	if !ok || rest == "" || rest[0] == '0' {
		return 0, false
	}
	v, err := strconv.Atoi(rest)
	return v, err == nil && v >= 1 && v <= 1024
}

// resolve finds what one input reads and checks its type.
func (c *compiler) resolve(n *node, portName string, want configs.PortKind, ref configs.Ref) source {
	s := source{name: portName, pos: c.valuePos(n.b.Inputs, portName, ref.Pos, n.b.Pos)}
	raw := strings.TrimSpace(ref.Raw)
	if raw == "" {
		c.structural.Add(s.pos, "input %q of %s is empty (write a tag name, block.port or a number)", portName, n.what())
		return s
	}
	if f, ok := ref.Literal(); ok {
		if want == boolean && f != 0 && f != 1 {
			c.errs.Add(s.pos, "input %q of %s is a bool: a literal must be true, false, 0 or 1, not %q", portName, n.what(), raw)
			return s
		}
		s.kind, s.lit, s.raw = srcLit, f, raw
		return s
	}
	if id, ok := c.tab.Lookup(raw); ok {
		info := c.tab.Info[id]
		switch {
		case info.Type == tag.String:
			c.errs.Add(s.pos, "input %q of %s reads string tag %q (blocks read number and bool tags)", portName, n.what(), raw)
			return s
		case want == boolean && info.Type != tag.Bool:
			c.errs.Add(s.pos, "input %q of %s is a bool but tag %q is a %s (turn it into a bool with compare or hysteresis)", portName, n.what(), raw, info.Type)
			return s
		}
		if w, ok := c.writers[id]; ok && w.n.task == n.task {
			s.kind, s.from, s.port = srcBlock, w.n, w.port
			return s
		}
		s.kind, s.tag = srcTag, id
		return s
	}
	if ref.IsExpr() {
		s.kind = srcExpr
		s.ex = c.newExpr(&exprSrc{n: n, src: ref.Raw, pos: s.pos, what: "input " + strconv.Quote(portName) + " of " + n.what()})
		if want == boolean {
			c.later = append(c.later, func() {
				if c.exprType(s.ex) != expr.Bool && s.ex.prog != nil {
					c.errs.Add(s.pos, "input %q of %s is a bool but the expression %q is a number (compare it: ... > 0)", portName, n.what(), raw)
				}
			})
		}
		return s
	}
	bname, pname, ok := ref.Block()
	from := c.byName[bname]
	if !ok || from == nil {
		c.structural.Add(s.pos, "input %q of %s: %q is not a tag, a block.port or a number", portName, n.what(), raw)
		return s
	}
	if from.task != n.task {
		c.structural.Add(s.pos, "input %q of %s reads block %q of task %q (connect tasks through a tag)", portName, n.what(), bname, c.cfg.Tasks[from.task].Name)
		return s
	}
	if from.typ == nil {
		return s // its type is already reported
	}
	k := slices.IndexFunc(from.typ.Outputs, func(p configs.BlockPort) bool { return p.Name == pname })
	if k < 0 {
		c.errs.Add(s.pos, "input %q of %s reads %q, but %s has no output %q (outputs: %s)", portName, n.what(), raw, from.what(), pname, portNames(from.typ.Outputs))
		return s
	}
	if want == boolean && from.typ.KindFrom != nil {
		c.later = append(c.later, func() {
			if !c.boolOut(from, k, 0) {
				c.errs.Add(s.pos, "input %q of %s is a bool but %s is a number (turn it into a bool with compare or hysteresis)", portName, n.what(), raw)
			}
		})
	} else if want == boolean && from.typ.Outputs[k].Kind != boolean {
		c.errs.Add(s.pos, "input %q of %s is a bool but %s is a number (turn it into a bool with compare or hysteresis)", portName, n.what(), raw)
		return s
	}
	s.kind, s.from, s.port = srcBlock, from, k
	return s
}

// boolOut reports whether a block output carries a bool: a bool port, or
// a delay or select whose data inputs all carry bools.
func (c *compiler) boolOut(n *node, port, depth int) bool {
	if n.typ.Outputs[port].Kind == boolean {
		return true
	}
	if n.typ.Expression {
		return n.ex != nil && c.exprType(n.ex) == expr.Bool
	}
	if n.typ.KindFrom == nil {
		return false
	}
	if depth > 64 {
		return true // a loop of delays carries what enters it
	}
	for i := range n.ins {
		if i < len(n.typ.Inputs) && !slices.Contains(n.typ.KindFrom, n.typ.Inputs[i].Name) {
			continue
		}
		s := &n.ins[i]
		switch s.kind {
		case srcLit:
			if s.lit != 0 && s.lit != 1 {
				return false
			}
		case srcTag:
			if c.tab.Info[s.tag].Type != tag.Bool {
				return false
			}
		case srcBlock:
			if !c.boolOut(s.from, s.port, depth+1) {
				return false
			}
		case srcExpr:
			if c.exprType(s.ex) != expr.Bool {
				return false
			}
		}
	}
	return true
}

// checkUnits checks that the inputs which must agree carry the same unit,
// and that a block passing its inputs' unit through writes tags in it.
func (c *compiler) checkUnits() {
	for _, nodes := range c.nodes {
		for _, n := range nodes {
			if n.typ == nil {
				continue
			}
			c.sharedUnit(n, n.typ.SameUnit, 0, func(first *source, firstUnit string, s *source, u string) {
				c.errs.Add(s.pos, "%s: %s is in %s but %s is in %s (units must match; convert with a scale block)", n.what(), first.name, firstUnit, s.name, u)
			})
			if n.typ.Expression {
				c.exprUnit(n)
				continue
			}
			u, from, ok := c.sharedUnit(n, n.typ.PassUnit, 0, nil)
			if !ok || u == "" {
				continue
			}
			for k, id := range n.outTag {
				if id < 0 || n.typ.Outputs[k].Kind == boolean {
					continue
				}
				if info := &c.tab.Info[id]; !configs.UnitsMatch(u, info.Unit) {
					c.errs.Add(n.b.Pos, "%s: %s is in %q but tag %s is in %q; a %s block does not convert units (add a scale block or fix the unit)",
						n.what(), c.describe(from), u, info.Name, info.Unit, n.typ.Name)
				}
			}
		}
	}
}

// sharedUnit is the unit of the first input of n named in ports that has
// one, and that input; ok is false when another named input is in another
// unit, and mismatch, when not nil, is told of each such input.
func (c *compiler) sharedUnit(n *node, ports []string, depth int, mismatch func(first *source, firstUnit string, s *source, u string)) (unit string, from *source, ok bool) {
	ok = true
	for i := range n.ins {
		if len(ports) == 0 || !n.listed(ports, i) {
			continue
		}
		s := &n.ins[i]
		u := c.unitOf(s, depth)
		switch {
		case u == "":
		case from == nil:
			unit, from = u, s
		case !configs.UnitsMatch(unit, u):
			ok = false
			if mismatch == nil {
				return "", nil, false
			}
			mismatch(from, unit, s, u)
		}
	}
	return unit, from, ok
}

// exprUnit checks that an expr block writes its result's unit.
func (c *compiler) exprUnit(n *node) {
	if n.ex == nil || n.ex.prog == nil || n.ex.prog.Unit() == "" || n.outTag[0] < 0 {
		return
	}
	u := n.ex.prog.Unit()
	if info := &c.tab.Info[n.outTag[0]]; info.Unit != "" && !configs.UnitsMatch(u, info.Unit) && n.ex.prog.Type() != expr.Bool {
		c.errs.Add(n.b.Pos, "%s: the expression is in %q but tag %s is in %q (convert it in the expression, e.g. * factor)", n.what(), u, info.Name, info.Unit)
	}
}

// describe names what an input reads: "tag x" or "block.port".
func (c *compiler) describe(s *source) string {
	if s.kind == srcExpr {
		return "expression " + strconv.Quote(s.ex.src)
	}
	if s.kind == srcBlock {
		return s.from.b.Name + "." + s.from.typ.Outputs[s.port].Name
	}
	return "tag " + c.tab.Info[s.tag].Name
}

// listed reports whether input i is named in ports ("in*": any variadic input).
func (n *node) listed(ports []string, i int) bool {
	if i >= len(n.typ.Inputs) {
		return slices.Contains(ports, "in*")
	}
	return slices.Contains(ports, n.typ.Inputs[i].Name)
}

// unitOf is the engineering unit of what an input reads; "" when unknown.
func (c *compiler) unitOf(s *source, depth int) string {
	switch s.kind {
	case srcTag:
		return c.tab.Info[s.tag].Unit
	case srcBlock:
		return c.outUnit(s.from, s.port, depth+1)
	case srcExpr:
		if s.ex.prog != nil {
			return s.ex.prog.Unit()
		}
	}
	return ""
}

// outUnit is the unit of a block output: the common unit of its pass-through
// inputs, else the unit of the tag it writes.
func (c *compiler) outUnit(n *node, port, depth int) string {
	if n.typ.Outputs[port].Kind == boolean || depth > 64 {
		return ""
	}
	key := [2]int{c.unitIDs[n], port}
	if u, ok := c.units[key]; ok {
		return u
	}
	c.units[key] = "" // a loop through pass-through blocks has no known unit
	u, _, ok := c.sharedUnit(n, n.typ.PassUnit, depth, nil)
	if n.typ.Expression && n.ex != nil {
		c.compileExpr(n.ex)
		if u, ok = "", n.ex.prog != nil; ok {
			u = n.ex.prog.Unit()
		}
	}
	if (!ok || u == "") && n.outTag[port] >= 0 {
		u = c.tab.Info[n.outTag[port]].Unit
	}
	c.units[key] = u
	return u
}

// nodeHeap orders ready blocks by their position in the task.
type nodeHeap []*node

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return h[i].idx < h[j].idx }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(*node)) }
func (h *nodeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// edges returns, per block of a task, the blocks that read its outputs in
// the same cycle (a delay's output is last cycle's value: no edge).
func (c *compiler) edges(nodes []*node) [][]int {
	succ := make([][]int, len(nodes))
	for _, n := range nodes {
		edge := func(s *source) {
			if s.kind == srcBlock && s.from.typ.op != opDelayOut && !slices.Contains(succ[s.from.idx], n.idx) {
				succ[s.from.idx] = append(succ[s.from.idx], n.idx)
			}
		}
		for i := range n.ins {
			n.ins[i].deps(edge)
		}
		if n.ex != nil {
			for i := range n.ex.leaves {
				n.ex.leaves[i].deps(edge)
			}
		}
		n.gateDeps(edge)
	}
	for i := range succ {
		slices.Sort(succ[i])
	}
	return succ
}

// order sorts a task's blocks in dependency order (ties in config order)
// and reports every loop not broken by a delay.
func (c *compiler) order(ti int) []*node {
	nodes := c.nodes[ti]
	succ := c.edges(nodes)
	indeg := make([]int, len(nodes))
	for _, ss := range succ {
		for _, j := range ss {
			indeg[j]++
		}
	}
	h := &nodeHeap{}
	for i, n := range nodes {
		if indeg[i] == 0 {
			*h = append(*h, n)
		}
	}
	heap.Init(h)
	order := make([]*node, 0, len(nodes))
	for h.Len() > 0 {
		n := heap.Pop(h).(*node)
		order = append(order, n)
		for _, j := range succ[n.idx] {
			if indeg[j]--; indeg[j] == 0 {
				heap.Push(h, nodes[j])
			}
		}
	}
	if len(order) < len(nodes) {
		c.reportLoops(nodes, succ, indeg)
	}
	return order
}

// reportLoops names the blocks of each loop (strongly connected component)
// left after the sort.
func (c *compiler) reportLoops(nodes []*node, succ [][]int, indeg []int) {
	left := func(i int) bool { return indeg[i] > 0 }
	for _, comp := range sccs(len(nodes), succ, left) {
		in := map[int]bool{}
		for _, i := range comp {
			in[i] = true
		}
		start := slices.Min(comp)
		if len(comp) == 1 && !slices.Contains(succ[start], start) {
			continue
		}
		// Shortest way round from the first block back to it.
		prev := map[int]int{}
		queue := []int{start}
		for len(queue) > 0 && prev[start] == 0 {
			i := queue[0]
			queue = queue[1:]
			for _, j := range succ[i] {
				if _, seen := prev[j]; in[j] && !seen {
					prev[j] = i + 1 // +1: 0 means unseen
					queue = append(queue, j)
				}
			}
		}
		path := []string{nodes[start].b.Name}
		for i := prev[start] - 1; i != start; i = prev[i] - 1 {
			path = append(path, nodes[i].b.Name)
		}
		path = append(path, nodes[start].b.Name)
		slices.Reverse(path[1 : len(path)-1])
		c.errs.Add(nodes[start].b.Pos, "blocks %s form a loop in task %q (break it with a delay block: type: delay)",
			strings.Join(path, " -> "), c.cfg.Tasks[nodes[start].task].Name)
	}
}

// sccs returns the strongly connected components (Tarjan) of the graph
// restricted to the vertices keep accepts.
func sccs(n int, succ [][]int, keep func(int) bool) [][]int {
	index, low := make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var out [][]int
	next := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range succ[v] {
			if !keep(w) {
				continue
			}
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			out = append(out, comp)
		}
	}
	for v := range n {
		if keep(v) && index[v] < 0 {
			visit(v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return slices.Min(out[i]) < slices.Min(out[j]) })
	return out
}

// emit lays out a task's registers, parameters and state and writes its
// instructions.
func (c *compiler) emit(ti int, order []*node) *TaskProgram {
	t := &c.cfg.Tasks[ti]
	tp := &TaskProgram{name: t.Name, tab: c.tab, index: map[string]int32{}}
	regs := 1 // register 0 is the constant 0 read by unwired inputs
	for _, n := range c.nodes[ti] {
		n.outReg = int32(regs)
		regs += len(n.outTag) // a sequence's outputs, then the tags its steps set
	}
	tp.regs = make([]float64, regs)
	lits := map[float64]int32{}
	tags := map[tag.ID]int32{}
	arg := func(s source) int32 {
		switch s.kind {
		case srcLit:
			if r, ok := lits[s.lit]; ok {
				return r
			}
			r := int32(len(tp.regs))
			tp.regs = append(tp.regs, s.lit)
			lits[s.lit] = r
			return r
		case srcTag:
			if r, ok := tags[s.tag]; ok {
				return r
			}
			r := int32(len(tp.regs))
			tp.regs = append(tp.regs, 0)
			tags[s.tag] = r
			tp.loads = append(tp.loads, move{reg: r, id: s.tag})
			tp.inputs = append(tp.inputs, s.tag)
			return r
		case srcBlock:
			return s.from.outReg + int32(s.port)
		case srcExpr:
			return s.ex.reg
		}
		return 0
	}
	// exprAt writes the instruction of an expression whose value goes to
	// register out; its arguments are what its names read, so its quality
	// is theirs. An expression among them is evaluated first.
	var inline func(es *exprSrc)
	exprAt := func(es *exprSrc, out int32) {
		for i := range es.leaves {
			if es.leaves[i].kind == srcExpr {
				inline(es.leaves[i].ex)
			}
		}
		regs := make([]int32, len(es.leaves))
		for i, l := range es.leaves {
			regs[i] = arg(l)
		}
		in := instr{op: opExpr, args: int32(len(tp.args)), nin: uint16(len(regs)), out: out, nout: 1, x: int32(len(tp.exprs))}
		tp.args = append(tp.args, regs...)
		es.prog.Bind(func(slot int) int32 { return regs[slot] })
		tp.exprs = append(tp.exprs, es.prog)
		tp.code = append(tp.code, in)
	}
	inline = func(es *exprSrc) {
		if es.reg != 0 {
			return // already evaluated this cycle
		}
		es.reg = int32(len(tp.regs))
		tp.regs = append(tp.regs, 0)
		exprAt(es, es.reg)
	}
	// place lays out a block's parameters and state.
	place := func(n *node) blockInfo {
		b := blockInfo{name: n.b.Name, typ: n.typ, par: int32(len(tp.params)), st: int32(len(tp.state)), out: n.outReg}
		tp.index[n.b.Name] = int32(len(tp.blocks))
		tp.blocks = append(tp.blocks, b)
		tp.params = append(tp.params, n.params...)
		st := make([]float64, n.typ.state)
		switch n.typ.op {
		case opDelayOut:
			st[0] = n.params[0] // initial value, good quality
		case opAlarm:
			for k := 4; k < 12; k++ {
				st[k] = -1 // no limit pending
			}
		}
		tp.state = append(tp.state, st...)
		return b
	}
	add := func(n *node, b blockInfo, op opcode, nout int) {
		defer n.gateLast(tp)
		if op == opExpr {
			exprAt(n.ex, n.outReg)
			return
		}
		for _, s := range n.ins {
			if s.kind == srcExpr && op != opDelayOut { // a delay takes its input at the end
				inline(s.ex)
			}
		}
		in := instr{op: op, hold: n.typ.hold, args: int32(len(tp.args)), out: n.outReg, nout: uint16(nout), par: b.par, st: b.st}
		if op != opDelayOut {
			for _, s := range n.ins {
				tp.args = append(tp.args, arg(s))
			}
			in.nin = uint16(len(n.ins))
		}
		tp.code = append(tp.code, in)
	}
	// Delays first emit last cycle's value, then the blocks run in
	// dependency order, then the delays take this cycle's input.
	var delays []*node
	for _, n := range c.nodes[ti] {
		if n.typ.op == opDelayOut {
			delays = append(delays, n)
			add(n, place(n), opDelayOut, 1)
		}
	}
	for _, n := range order {
		if n.typ.op != opDelayOut {
			add(n, place(n), n.typ.op, len(n.outTag))
		}
	}
	for _, n := range delays {
		add(n, tp.blocks[tp.index[n.b.Name]], opDelayIn, 0)
	}
	tp.qual = make([]uint16, len(tp.regs))
	for _, n := range order {
		for k, id := range n.outTag {
			if id >= 0 {
				tp.stores = append(tp.stores, move{reg: n.outReg + int32(k), id: id})
				tp.output = append(tp.output, id)
			}
		}
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%d\x00", t.Name, len(tp.state))
	for _, b := range tp.blocks {
		fmt.Fprintf(h, "%s\x00%s\x00", b.name, b.typ.Name)
	}
	tp.print = float64(h.Sum32())
	return tp
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
