package configs

import (
	"fmt"
	"go/scanner"
	"go/token"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// BlockTypeDef is a user-defined function block (block_types:): a named
// group of blocks with inputs, outputs and parameters. A task instantiates
// it as a block whose type is the definition's name; parse expands every
// instance into its blocks, named <instance>_<inner>, so validation, the
// block compiler, live parameter changes and hand-over see ordinary blocks.
//
// A type's scope is closed: its blocks read the type's inputs (bare names),
// its parameters (bare names, as parameter values or in expressions) and
// each other (inner.port, or nested.output of an inner instance); nothing
// else. They write tags only through the type's outputs, which the
// instance wires to tags, and blocks outside read an instance's output as
// instance.output.
type BlockTypeDef struct {
	Pos         Pos          `yaml:"-"`
	Name        string       `yaml:"name" doc:"type name, used as a block's type; letters, digits, '-', '_'" required:"true"`
	Description string       `yaml:"description" doc:"free text"`
	Inputs      []TypeInput  `yaml:"inputs" doc:"inputs an instance wires (inputs: name: tag, block.port, literal or expression)"`
	Outputs     []TypeOutput `yaml:"outputs" doc:"outputs an instance may write to tags (outputs: name: tag) and other blocks read as instance.name"`
	Params      []TypeParam  `yaml:"params" doc:"parameters an instance sets (params: name: value); inner blocks name them as a parameter value or in an expression"`
	Blocks      []Block      `yaml:"blocks" doc:"the blocks each instance runs; a block's type may be another block type" required:"true"`
}

// TypeInput is an input of a block type.
type TypeInput struct {
	Pos     Pos    `yaml:"-"`
	Name    string `yaml:"name" doc:"input name, read by the type's blocks as a bare name" required:"true"`
	Default Ref    `yaml:"default" doc:"what the input reads when an instance leaves it unwired (a literal or a tag); without it an instance must wire it"`
	Doc     string `yaml:"doc" doc:"free text"`
}

// TypeOutput is an output of a block type: one inner block's output port.
type TypeOutput struct {
	Pos  Pos    `yaml:"-"`
	Name string `yaml:"name" doc:"output name" required:"true"`
	From string `yaml:"from" doc:"the inner block.port (or nested instance.output) it is" required:"true"`
	Doc  string `yaml:"doc" doc:"free text"`
}

// TypeParam is a parameter of a block type.
type TypeParam struct {
	Pos     Pos    `yaml:"-"`
	Name    string `yaml:"name" doc:"parameter name" required:"true"`
	Default Value  `yaml:"default" doc:"value when an instance does not set it; without it an instance must set it"`
	Doc     string `yaml:"doc" doc:"free text"`
}

// MaxTypeDepth bounds how deep block types nest (a type whose blocks are
// instances of types whose blocks are instances ...).
const MaxTypeDepth = 8

// typeSep joins an instance's name and an inner block's name. It is not
// a dot: a dot separates a block from its port in every reference.
const typeSep = "_"

// expander expands block-type instances; see BlockTypeDef.
type expander struct {
	c     *Config
	errs  *Errors
	types map[string]*BlockTypeDef
	// placed holds where the name, type and expr of each expanded block
	// were written, recorded once the block has its place in a task.
	placed map[string][3]Pos
}

// scope is where names of a block list resolve: a task (open: unknown
// names are tags and blocks checked later) or an instance of a type.
type scope struct {
	prefix string         // prepended to inner block names
	ctx    string         // prepended to the file of positions in the type
	td     *BlockTypeDef  // nil for a task
	inst   string         // the instance's name
	inputs map[string]Ref // input -> what it reads, in the outer scope's terms
	params map[string]Value
	plain  map[string]bool              // inner blocks of catalogue types
	outs   map[string]map[string]string // inner instance -> output -> expanded block.port
	chain  []string                     // type names from the task down
}

// expandBlockTypes replaces every instance of a block type in the tasks by
// its blocks. It reports every problem in errs.
func (c *Config) expandBlockTypes(errs *Errors) {
	if len(c.BlockTypes) == 0 {
		return
	}
	x := &expander{c: c, errs: errs, types: map[string]*BlockTypeDef{}, placed: map[string][3]Pos{}}
	for i := range c.BlockTypes {
		td := &c.BlockTypes[i]
		pos := c.FieldPos(&td.Name, td.Pos)
		switch first, dup := x.types[td.Name]; {
		case td.Name == "":
			continue // required: reported by Validate
		case !nameRE.MatchString(td.Name):
			errs.Add(pos, "block type %q: a type name is letters, digits, '-' and '_'", td.Name)
		case dup:
			errs.Add(pos, "block type %q is defined twice (first at %s); give each type its own name", td.Name, first.Pos)
			continue
		}
		x.types[td.Name] = td
		x.interfaceNames(td)
	}
	for i := range c.Tasks {
		t := &c.Tasks[i]
		top := &scope{}
		t.Blocks = x.expand(top, t.Blocks)
		for j := range t.Blocks {
			b := &t.Blocks[j]
			if p, ok := x.placed[b.Name]; ok {
				x.place(&b.Name, p[0])
				x.place(&b.Type, p[1])
				x.place(&b.Expr, p[2])
			}
		}
	}
	// A cycle is met again by every instance on it; report it once.
	seen := map[Error]bool{}
	*errs = slices.DeleteFunc(*errs, func(e *Error) bool {
		dup := seen[*e]
		seen[*e] = true
		return dup
	})
}

// interfaceNames reports names of td's inputs, parameters and outputs
// that are not identifiers (an expression reads them) or are used twice.
func (x *expander) interfaceNames(td *BlockTypeDef) {
	seen := map[string]string{}
	check := func(name *string, pos Pos, kind string) {
		p := x.c.FieldPos(name, pos)
		switch first, dup := seen[*name]; {
		case *name == "":
		case !identRE.MatchString(*name) || strings.Contains(*name, "."):
			x.errs.Add(p, "block type %s: %s name %q is not an identifier (letters, digits and '_', not first a digit): expressions read it", td.Name, kind, *name)
		case dup:
			x.errs.Add(p, "block type %s: %s %s has the name of its %s; give each input, parameter and output its own name", td.Name, kind, *name, first)
		}
		if _, dup := seen[*name]; !dup {
			seen[*name] = kind
		}
	}
	for i := range td.Inputs {
		check(&td.Inputs[i].Name, td.Inputs[i].Pos, "input")
	}
	for i := range td.Params {
		check(&td.Params[i].Name, td.Params[i].Pos, "parameter")
	}
	for i := range td.Outputs {
		check(&td.Outputs[i].Name, td.Outputs[i].Pos, "output")
	}
}

// expand returns blocks with every instance replaced by its blocks and
// every name resolved in sc.
func (x *expander) expand(sc *scope, blocks []Block) []Block {
	sc.plain, sc.outs = map[string]bool{}, map[string]map[string]string{}
	for i := range blocks {
		b := &blocks[i]
		if td, ok := x.types[b.Type]; ok {
			sc.outs[b.Name] = x.outputs(td, sc.prefix+b.Name+typeSep, append(sc.chain[:len(sc.chain):len(sc.chain)], td.Name), sc.mark(b.Pos))
		} else {
			sc.plain[b.Name] = true
		}
	}
	if sc.td == nil && len(sc.outs) == 0 {
		return blocks // a task without instances stays as written
	}
	out := make([]Block, 0, len(blocks))
	for i := range blocks {
		b := &blocks[i]
		nb := x.rewrite(sc, b)
		td, ok := x.types[b.Type]
		if !ok {
			out = append(out, nb)
			continue
		}
		out = append(out, x.instance(sc, &nb, b, td)...)
	}
	return out
}

// outputs maps each output of type td, instantiated with prefix, to the
// expanded block.port it is; it reports cycles and too deep nesting at pos.
func (x *expander) outputs(td *BlockTypeDef, prefix string, chain []string, pos Pos) map[string]string {
	if !x.nestable(td, chain, pos) {
		return nil
	}
	inner := map[string]*Block{}
	for i := range td.Blocks {
		inner[td.Blocks[i].Name] = &td.Blocks[i]
	}
	m := map[string]string{}
	for _, o := range td.Outputs {
		blk, port, _ := strings.Cut(o.From, ".")
		b, ok := inner[blk]
		if !ok || port == "" {
			continue // reported where the type is instantiated
		}
		if nt, nested := x.types[b.Type]; nested {
			if to, ok := x.outputs(nt, prefix+blk+typeSep, append(chain[:len(chain):len(chain)], nt.Name), pos)[port]; ok {
				m[o.Name] = to
			}
			continue
		}
		m[o.Name] = prefix + blk + "." + port
	}
	return m
}

// nestable reports whether chain (ending with td) is neither a cycle nor
// deeper than MaxTypeDepth, reporting which at pos.
func (x *expander) nestable(td *BlockTypeDef, chain []string, pos Pos) bool {
	for _, name := range chain[:len(chain)-1] {
		if name == td.Name {
			x.errs.Add(pos, "block type %s contains itself (%s); a type may not use itself, directly or through other types", td.Name, strings.Join(chain, " → "))
			return false
		}
	}
	if len(chain) > MaxTypeDepth {
		x.errs.Add(pos, "block types nest deeper than %d (%s); flatten the types", MaxTypeDepth, strings.Join(chain, " → "))
		return false
	}
	return true
}

// instance returns the blocks of inst, an instance of td written in sc as
// src (nb is inst with its wiring already resolved in sc).
func (x *expander) instance(sc *scope, nb, src *Block, td *BlockTypeDef) []Block {
	chain := append(sc.chain[:len(sc.chain):len(sc.chain)], td.Name)
	if sc.outs[src.Name] == nil {
		return nil // a cycle or too deep: reported
	}
	instPos := sc.mark(x.c.FieldPos(&src.Name, src.Pos))
	in := &scope{
		prefix: nb.Name + typeSep, td: td, inst: src.Name, chain: chain,
		ctx:    fmt.Sprintf("%s: in %s (type %s, defined at %s): ", instPos, src.Name, td.Name, td.Pos),
		inputs: map[string]Ref{}, params: map[string]Value{},
	}
	what := fmt.Sprintf("block %s (type %s, defined at %s)", src.Name, td.Name, td.Pos)
	if src.Expr.Raw != "" {
		x.errs.Add(sc.mark(src.Expr.Pos), "%s: expr is for expr blocks; a block type's expressions are inside its definition", what)
	}
	declared := func(kind string, names []string) string {
		if len(names) == 0 {
			return "it has none"
		}
		return kind + ": " + strings.Join(names, ", ")
	}
	var inNames, paramNames, outNames []string
	broken := false // an instance that does not fit its type is not expanded
	for _, ti := range td.Inputs {
		inNames = append(inNames, ti.Name)
		r, ok := bind(nb.Inputs, ti.Name, ti.Default, ti.Default.Raw != "", func(r *Ref) { r.Pos = in.mark(r.Pos) })
		if !ok {
			x.errs.Add(instPos, "%s: input %s is not wired and has no default; add inputs: {%s: <tag, block.port or value>}", what, ti.Name, ti.Name)
		}
		in.inputs[ti.Name], broken = r, broken || !ok
	}
	for _, tp := range td.Params {
		paramNames = append(paramNames, tp.Name)
		v, ok := bind(nb.Params, tp.Name, tp.Default, tp.Default.Set, func(v *Value) { v.Pos = in.mark(v.Pos) })
		if !ok {
			x.errs.Add(instPos, "%s: parameter %s is not set and has no default; add params: {%s: <value>}", what, tp.Name, tp.Name)
		}
		in.params[tp.Name], broken = v, broken || !ok
	}
	for _, to := range td.Outputs {
		outNames = append(outNames, to.Name)
	}
	unknown := func(given []string, names []string, kind, plural string, at func(string) Pos) {
		for _, k := range given {
			if !slices.Contains(names, k) {
				x.errs.Add(sc.mark(at(k)), "%s has no %s %q%s (%s)", what, kind, k, DidYouMean(k, names), declared(plural, names))
			}
		}
	}
	unknown(sortedKeys(nb.Inputs), inNames, "input", "inputs", func(k string) Pos { _, p := x.c.EntryPos(src.Inputs, k, src.Pos); return p })
	unknown(sortedKeys(nb.Params), paramNames, "parameter", "params", func(k string) Pos { p, _ := x.c.EntryPos(src.Params, k, src.Pos); return p })
	unknown(sortedKeys(nb.Outputs), outNames, "output", "outputs", func(k string) Pos { p, _ := x.c.EntryPos(src.Outputs, k, src.Pos); return p })
	if broken {
		return nil
	}
	blocks := x.expand(in, td.Blocks)
	outs := sc.outs[src.Name]
	for _, o := range td.Outputs {
		blk, port, ok := strings.Cut(o.From, ".")
		if !ok || (!in.plain[blk] && in.outs[blk] == nil) {
			x.errs.Add(in.mark(x.c.FieldPos(&o.From, o.Pos)), "output %s: from %q names no block of the type; write inner_block.port (blocks: %s)", o.Name, o.From, strings.Join(sortedKeys(in.plain), ", "))
		} else if _, ok := outs[o.Name]; !ok && in.outs[blk] != nil {
			x.errs.Add(in.mark(x.c.FieldPos(&o.From, o.Pos)), "output %s: from %q: block %s has no output %s", o.Name, o.From, blk, port)
		}
	}
	for _, o := range sortedKeys(nb.Outputs) {
		keyPos, _ := x.c.EntryPos(src.Outputs, o, src.Pos)
		target, ok := outs[o]
		if !ok {
			continue // reported above, or a broken output of the type
		}
		blk, port, _ := strings.Cut(target, ".")
		for i := range blocks {
			b := &blocks[i]
			if b.Name != blk {
				continue
			}
			if prev, dup := b.Outputs[port]; dup {
				x.errs.Add(sc.mark(keyPos), "%s: output %s is the same port as another output already writing tag %s; wire one of them", what, o, prev)
				break
			}
			if b.Outputs == nil {
				b.Outputs = map[string]string{}
			}
			b.Outputs[port] = nb.Outputs[o]
			p := sc.mark(keyPos)
			x.c.where.entries[entryKey{mapPtr(b.Outputs), port}] = [2]Pos{p, p}
		}
	}
	return blocks
}

// bind is what an instance gives its type's input or parameter name: its
// own, else the type's default (placed by place); ok is false when it
// gives neither.
func bind[V any](given map[string]V, name string, def V, hasDef bool, place func(*V)) (v V, ok bool) {
	if v, ok := given[name]; ok {
		return v, true
	}
	if hasDef {
		place(&def)
	}
	return def, hasDef
}

// rewrite returns b named and wired in sc: inner names prefixed, a type's
// inputs and parameters replaced by what the instance gives them.
func (x *expander) rewrite(sc *scope, b *Block) Block {
	if sc.td == nil && len(sc.outs) == 0 {
		return *b
	}
	nb := Block{Pos: sc.mark(b.Pos), Name: sc.prefix + b.Name, Type: b.Type}
	x.placed[nb.Name] = [3]Pos{x.field(sc, &b.Name), x.field(sc, &b.Type), x.field(sc, &b.Expr)}
	if b.Expr.Raw != "" {
		nb.Expr = x.ref(sc, b, b.Expr, "expr")
	}
	if b.Inputs != nil {
		nb.Inputs = make(map[string]Ref, len(b.Inputs))
		for _, port := range sortedKeys(b.Inputs) {
			r := b.Inputs[port]
			if r.Pos.Line == 0 {
				_, r.Pos = x.c.EntryPos(b.Inputs, port, b.Pos)
			}
			nb.Inputs[port] = x.ref(sc, b, r, "input "+port)
			x.entry(sc, nb.Inputs, b.Inputs, port)
		}
	}
	if b.Params != nil {
		nb.Params = make(map[string]Value, len(b.Params))
		for _, p := range sortedKeys(b.Params) {
			v := b.Params[p]
			if tv, ok := sc.params[v.Raw]; ok && sc.td != nil {
				nb.Params[p] = tv
				x.c.where.entries[entryKey{mapPtr(nb.Params), p}] = [2]Pos{tv.Pos, tv.Pos}
				continue
			}
			v.Pos = sc.mark(v.Pos)
			nb.Params[p] = v
			x.entry(sc, nb.Params, b.Params, p)
		}
	}
	if b.Outputs != nil {
		if sc.td != nil {
			keyPos, _ := x.c.EntryPos(b.Outputs, sortedKeys(b.Outputs)[0], b.Pos)
			x.errs.Add(sc.mark(keyPos), "block %s: a block of a type writes no tags; name the port in the type's outputs (outputs: - name: ..., from: %s.<port>) and let each instance wire it", b.Name, b.Name)
		} else {
			nb.Outputs = make(map[string]string, len(b.Outputs))
			for k, v := range b.Outputs {
				nb.Outputs[k] = v
				x.entry(sc, nb.Outputs, b.Outputs, k)
			}
		}
	}
	return nb
}

// ref resolves r, read by b in sc.
func (x *expander) ref(sc *scope, b *Block, r Ref, what string) Ref {
	r.Pos = sc.mark(r.Pos)
	if _, lit := r.Literal(); lit || r.Raw == "" {
		return r
	}
	if r.IsExpr() || what == "expr" {
		r.Raw = x.expr(sc, b, r, what)
		return r
	}
	to, wired, err := sc.resolve(r.Raw)
	if err != "" {
		// Left empty: the check of an empty input at this place is dropped
		// as a follow-on of this problem.
		x.errs.Add(r.Pos, "block %s: %s %s", b.Name, what, err)
		r.Raw = ""
		return r
	}
	if wired != nil {
		return *wired
	}
	r.Raw = to
	return r
}

// expr rewrites the names of the expression r in sc; see failed for what
// it returns after reporting a name that means nothing in sc.
func (x *expander) expr(sc *scope, b *Block, r Ref, what string) string {
	var s scanner.Scanner
	src := []byte(r.Raw)
	fs := token.NewFileSet()
	s.Init(fs.AddFile("", -1, len(src)), src, nil, 0)
	type tok struct {
		off int
		t   token.Token
		lit string
	}
	var toks []tok
	for {
		pos, t, lit := s.Scan()
		if t == token.EOF {
			break
		}
		toks = append(toks, tok{fs.Position(pos).Offset, t, lit})
	}
	var out strings.Builder
	last := 0
	// name reads r.Raw[off:end] as name; false after reporting it.
	name := func(name string, off, end int) bool {
		to, wired, why := sc.resolve(name)
		if why != "" {
			x.errs.Add(r.Pos, "block %s: %s %s", b.Name, what, why)
			return false
		}
		out.WriteString(r.Raw[last:off])
		out.WriteString(operand(to, wired))
		last = end
		return true
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.t == token.STRING && sc.td != nil {
			// "name" is a tag whose name is not an identifier: a type
			// reads none, but it may quote its own names.
			if n, err := strconv.Unquote(t.lit); err == nil && !name(n, t.off, t.off+len(t.lit)) {
				return failed(what, r)
			}
			continue // (a bad string is the expression parser's to report)
		}
		if t.t != token.IDENT {
			continue
		}
		if i > 0 && toks[i-1].t == token.PERIOD {
			continue // a port, already rewritten with its block
		}
		if i+1 < len(toks) && toks[i+1].t == token.LPAREN {
			continue // a function
		}
		if t.lit == "true" || t.lit == "false" {
			continue
		}
		n, end := t.lit, t.off+len(t.lit)
		if i+2 < len(toks) && toks[i+1].t == token.PERIOD && toks[i+2].t == token.IDENT {
			n += "." + toks[i+2].lit
			end = toks[i+2].off + len(toks[i+2].lit)
		}
		if !name(n, t.off, end) {
			return failed(what, r)
		}
	}
	out.WriteString(r.Raw[last:])
	return out.String()
}

// failed is what an expression with a name that means nothing becomes:
// "" for an input (whose check of an empty value at the same place is
// dropped as a follow-on) and the expression as written for an expr block
// (which needs one).
func failed(what string, r Ref) string {
	if what == "expr" {
		return r.Raw
	}
	return ""
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// operand is what a resolved name is written as inside an expression: an
// expression wired to an input in parentheses, a tag whose name is not an
// identifier quoted.
func operand(to string, wired *Ref) string {
	if wired == nil {
		return to
	}
	switch _, lit := wired.Literal(); {
	case lit || identRE.MatchString(wired.Raw):
		return wired.Raw
	case wired.IsExpr():
		return "(" + wired.Raw + ")"
	}
	return strconv.Quote(wired.Raw)
}

// resolve is what name means in sc: a new name (to), or what a type's
// input or parameter is given (wired), or why it means nothing (err).
func (sc *scope) resolve(name string) (to string, wired *Ref, err string) {
	blk, port, dotted := strings.Cut(name, ".")
	switch {
	case dotted && sc.plain[blk]:
		return sc.prefix + name, nil, ""
	case dotted && sc.outs[blk] != nil:
		if to, ok := sc.outs[blk][port]; ok {
			return to, nil, ""
		}
		return "", nil, fmt.Sprintf("reads %q, but the block type of %s has no output %q (outputs: %s)", name, blk, port, strings.Join(sortedKeys(sc.outs[blk]), ", "))
	case sc.td == nil:
		return name, nil, ""
	case !dotted:
		if r, ok := sc.inputs[name]; ok {
			return "", &r, ""
		}
		if v, ok := sc.params[name]; ok {
			return v.Raw, nil, ""
		}
	}
	known := append(sortedKeys(sc.inputs), sortedKeys(sc.params)...)
	if dotted {
		known = append(sortedKeys(sc.plain), sortedKeys(sc.outs)...)
		name, blk = blk, name
	}
	return "", nil, fmt.Sprintf("reads %q, which is none of the inputs, parameters or blocks of type %s%s; a type reads only those: declare it under inputs: and wire it in each instance", blk, sc.td.Name, DidYouMean(name, known))
}

// mark places p inside the instance sc: its text names the instance and
// the type, then the place in the type's definition.
func (sc *scope) mark(p Pos) Pos {
	if sc.ctx == "" || p.File == "" {
		return p
	}
	p.File = sc.ctx + p.File
	return p
}

func mapPtr(m any) unsafe.Pointer { return reflect.ValueOf(m).UnsafePointer() }

// field is where the field src was written, placed in sc; the zero Pos
// when it was not written.
func (x *expander) field(sc *scope, src any) Pos {
	if p, ok := x.c.where.fields[src]; ok {
		return sc.mark(p)
	}
	return Pos{}
}

// place records that the expanded field ptr was written at p.
func (x *expander) place(ptr any, p Pos) {
	if p.Line != 0 {
		x.c.where.fields[ptr] = p
	}
}

// entry records where the entry key of the expanded map dst was written:
// where it was in src.
func (x *expander) entry(sc *scope, dst, src any, key string) {
	k, v := x.c.EntryPos(src, key, Pos{})
	x.c.where.entries[entryKey{mapPtr(dst), key}] = [2]Pos{sc.mark(k), sc.mark(v)}
}
