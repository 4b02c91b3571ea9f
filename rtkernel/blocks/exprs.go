package blocks

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
	"github.com/mkrt/mkrt/shm/tag"
)

// exprSrc is one expression of a config: an expr block's expr:, an input
// written as an expression, or the formula of a standard function block
// (add, sqrt, gt, ...). It compiles once every block's inputs are known
// (the type of a name may depend on them).
type exprSrc struct {
	n     *node
	src   string
	pos   configs.Pos       // where src is written (a formula: its block)
	what  string            // "expr of ..." or "input x of ..."
	local map[string]source // names of the block's own inputs (in1..inN, in, ...)
	// formula: the locals are the block's number inputs (a bool counts as
	// an int 0 or 1, units are the catalogue's business).
	formula bool
	prog    *expr.Program
	leaves  []source // what the names read, by slot
	busy    bool
	done    bool
	reg     int32 // the register an input expression is evaluated into
}

// newExpr records an expression to compile after the wiring.
func (c *compiler) newExpr(es *exprSrc) *exprSrc {
	c.exprs = append(c.exprs, es)
	return es
}

// exprType is the type of the expression's value (compiling it if need be).
func (c *compiler) exprType(es *exprSrc) expr.Type {
	c.compileExpr(es)
	if es.prog == nil {
		return expr.Float
	}
	return es.prog.Type()
}

// compileExpr compiles es, reporting its errors at their place in the file.
func (c *compiler) compileExpr(es *exprSrc) {
	if es.done || es.busy {
		return
	}
	es.busy = true
	defer func() { es.busy, es.done = false, true }()
	slots := map[string]int{}
	prog, err := expr.Compile(es.src, func(name string) (expr.Var, string) {
		if k, ok := slots[name]; ok {
			return c.leafVar(es, k), ""
		}
		s, msg := c.exprName(es, name)
		if msg != "" {
			return expr.Var{}, msg
		}
		slots[name] = len(es.leaves)
		es.leaves = append(es.leaves, s)
		return c.leafVar(es, len(es.leaves)-1), ""
	})
	var e *expr.Error
	switch {
	case errors.As(err, &e) && es.formula:
		c.errs.Add(es.n.b.Pos, "%s: %s", es.n.what(), e.Msg)
	case errors.As(err, &e):
		c.errs.Add(c.exprPos(es.pos, e.Off), "%s: %s", es.what, e.Msg)
	case err != nil:
		c.errs.Add(es.pos, "%s: %v", es.what, err)
	default:
		es.prog = prog
	}
}

// exprName resolves a name of an expression to what it reads.
func (c *compiler) exprName(es *exprSrc, name string) (source, string) {
	n := es.n
	if s, ok := es.local[name]; ok {
		return s, ""
	}
	s := source{name: name, pos: es.pos}
	if id, ok := c.tab.Lookup(name); ok {
		info := c.tab.Info[id]
		if info.Type == tag.String {
			return s, "tag " + strconv.Quote(name) + " is a string (expressions read number and bool tags)"
		}
		if w, ok := c.writers[id]; ok && w.n.task == n.task {
			s.kind, s.from, s.port = srcBlock, w.n, w.port
			return s, ""
		}
		s.kind, s.tag = srcTag, id
		return s, ""
	}
	bname, pname, dotted := strings.Cut(name, ".")
	from := c.byName[bname]
	switch {
	case !dotted || from == nil:
		names := make([]string, 0, len(c.tab.Info))
		for _, in := range c.tab.Info {
			names = append(names, in.Name)
		}
		return s, "unknown name " + strconv.Quote(name) + configs.DidYouMean(name, names) + " (a tag, block.port, or a string \"name\" for a tag whose name is not an identifier)"
	case from.task != n.task:
		return s, "reads block " + strconv.Quote(bname) + " of task " + strconv.Quote(c.cfg.Tasks[from.task].Name) + " (connect tasks through a tag)"
	case from.typ == nil:
		return s, "" // its type is already reported
	}
	for k, p := range from.typ.Outputs {
		if p.Name == pname {
			s.kind, s.from, s.port = srcBlock, from, k
			return s, ""
		}
	}
	return s, from.what() + " has no output " + strconv.Quote(pname) + " (outputs: " + portNames(from.typ.Outputs) + ")"
}

// leafVar is the type and unit of slot k of es.
func (c *compiler) leafVar(es *exprSrc, k int) expr.Var {
	s := &es.leaves[k]
	v := expr.Var{Slot: k, Type: expr.Float}
	switch s.kind {
	case srcLit:
		if s.lit == float64(int32(s.lit)) && !strings.ContainsAny(s.raw, ".eE") {
			v.Type = expr.Int
		}
	case srcTag:
		info := &c.tab.Info[s.tag]
		switch {
		case info.Type == tag.Bool:
			v.Type = expr.Bool
		case info.Type == tag.Int16 || info.Type == tag.Uint16 || info.Type == tag.Int32:
			v.Type = expr.Int // what fits IEC's DINT; uint32 and int64 tags are floats
		}
		v.Unit = info.Unit
	case srcBlock:
		if c.boolOut(s.from, s.port, 0) {
			v.Type = expr.Bool
		} else {
			v.Unit = c.outUnit(s.from, s.port, 1)
		}
	case srcExpr:
		if s.ex.prog == nil {
			c.compileExpr(s.ex)
		}
		if s.ex.prog != nil {
			v.Type, v.Unit = s.ex.prog.Type(), s.ex.prog.Unit()
		}
	}
	if es.formula {
		v.Unit = ""
		if v.Type == expr.Bool {
			v.Type = expr.Int
		}
	}
	return v
}

// exprPos is the position of byte off of an expression written at p.
// The file is read for how the scalar is written: a quoted scalar starts
// one column after its quote and counts an escape as the characters
// written, a block scalar (| or >) starts on the next line, and a line
// break inside the scalar counts as one character (the newline or the
// space it folds to). A config not read from a file counts as plain.
func (c *compiler) exprPos(p configs.Pos, off int) configs.Pos {
	if p.Line == 0 {
		return p
	}
	lines := c.sourceLines(p.File)
	if p.Line > len(lines) {
		p.Col += off
		return p
	}
	ln, i := p.Line-1, byteOfCol(lines[p.Line-1], p.Col)
	var quote byte
	block := -1 // a block scalar's indentation, once known
	if i < len(lines[ln]) {
		switch lines[ln][i] {
		case '"', '\'':
			quote = lines[ln][i]
			i++
		case '|', '>':
			i, block = len(lines[ln]), 0 // the text starts on the next line
		}
	}
	// next moves to the next line's text; false at the end of the file.
	next := func() bool {
		if ln+1 >= len(lines) {
			return false
		}
		ln++
		line := lines[ln]
		i = len(line) - len(strings.TrimLeft(line, " \t"))
		switch {
		case block == 0:
			block = i
		case block > 0:
			i = min(i, block) // a block scalar keeps deeper indentation
		}
		return true
	}
	if i >= len(lines[ln]) && !next() {
		return p
	}
	// Skip what TrimSpace took from the value.
	for i < len(lines[ln]) && (lines[ln][i] == ' ' || lines[ln][i] == '\t') {
		i++
	}
	for ; off > 0; off-- {
		line := lines[ln]
		switch {
		case i >= len(line):
			if !next() {
				off = 0
			}
		case quote == '\'' && line[i] == '\'' && i+1 < len(line) && line[i+1] == '\'':
			i += 2
		case quote == '"' && line[i] == '\\' && i+1 < len(line):
			i += 2 + map[byte]int{'x': 2, 'u': 4, 'U': 8}[line[i+1]]
		default:
			_, w := utf8.DecodeRuneInString(line[i:])
			i += w
			off -= w - 1 // off counts bytes
		}
	}
	line := lines[ln]
	return configs.Pos{File: p.File, Line: ln + 1, Col: utf8.RuneCountInString(line[:min(i, len(line))]) + 1}
}

// byteOfCol is the byte index of 1-based column col (in runes) of line.
func byteOfCol(line string, col int) int {
	i := 0
	for k := 1; k < col && i < len(line); k++ {
		_, w := utf8.DecodeRuneInString(line[i:])
		i += w
	}
	return i
}

// sourceLines are the lines of a config file, read once per compile; nil
// when it cannot be read.
func (c *compiler) sourceLines(file string) []string {
	if lines, ok := c.files[file]; ok {
		return lines
	}
	var lines []string
	if data, err := os.ReadFile(file); err == nil && file != "" {
		lines = strings.Split(string(data), "\n")
	}
	if c.files == nil {
		c.files = map[string][]string{}
	}
	c.files[file] = lines
	return lines
}

// fold is a formula of n numbered inputs joined by op: in1 op in2 op ...
func fold(op string) func(n int) string {
	return func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = "in" + strconv.Itoa(i+1)
		}
		return strings.Join(parts, " "+op+" ")
	}
}

// chain is IEC's extensible comparison: in1 op in2 && in2 op in3 ...
func chain(op string) func(n int) string {
	return func(n int) string {
		parts := make([]string, n-1)
		for i := range parts {
			parts[i] = "in" + strconv.Itoa(i+1) + " " + op + " in" + strconv.Itoa(i+2)
		}
		return strings.Join(parts, " && ")
	}
}

// fixed is a formula of named inputs.
func fixed(src string) func(int) string { return func(int) string { return src } }
