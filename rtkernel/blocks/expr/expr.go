// Package expr compiles the expressions of a control config — an expr
// block's `expr:` and an input written as an expression — into flat
// programs that run allocation-free every cycle.
//
// An expression is written in Go's expression syntax and parsed with
// go/parser: numbers (2, 0.5, 1e3), true and false, names (a tag, or
// block.port; a name that is not a Go identifier, such as a tag with a
// '-', is written as a string: "fic-101"), the operators + - * / %,
// == != < <= > >=, && || !, unary -, parentheses, and calls of the
// standard functions (Funcs). if(c, a, b) is a if c, else b; only the
// chosen branch is evaluated, and && and || evaluate their right side
// only when it decides the result.
//
// Every value is a float, an int or a bool. Literals without a point are
// ints, and an int becomes a float where it meets one. Arithmetic takes
// numbers, && || ! take bools, comparisons give bools; a bool is not a
// number (convert with bool_to_int). int / int truncates toward zero and
// % takes the sign of the dividend, as in IEC 61131-3; an int is IEC's
// DINT, 32 bits. Where the names carry engineering units, + - the
// comparisons and the branches of if, min, max, limit and sel must agree,
// and the result carries the unit; * and / give a value without a unit.
//
// Errors never stop a cycle: division or modulo by zero, a square root of
// a negative number, a logarithm of 0 or less, asin/acos beyond [-1, 1],
// expt(0, negative) and a NaN give 0; an overflow (a float beyond ±MaxFloat64, an int
// beyond DINT) gives the nearest limit. Either way Eval reports the result
// bad.
package expr

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Type is the type of a value.
type Type uint8

// The types.
const (
	Float Type = iota
	Int
	Bool
)

func (t Type) String() string {
	switch t {
	case Int:
		return "int"
	case Bool:
		return "bool"
	}
	return "float"
}

// Var is what a name stands for: the slot Eval reads it from, its type and
// its engineering unit ("" when unknown).
type Var struct {
	Slot int
	Type Type
	Unit string
}

// Resolver tells the compiler what a name means; it returns a message
// (saying what is wrong and the fix) when the name means nothing.
type Resolver func(name string) (Var, string)

// Error is a problem with an expression at byte offset Off of its text.
type Error struct {
	Off int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("offset %d: %s", e.Off, e.Msg) }

// MaxLen is the longest expression accepted, in bytes.
const MaxLen = 4096

// fusing: Compile fuses instructions (off only in tests, to compare).
var fusing = true

// maxDepth bounds the nesting of an expression.
const maxDepth = 200

// Int limits: IEC DINT.
const (
	IntMin = math.MinInt32
	IntMax = math.MaxInt32
)

// Program is a compiled expression. Eval must be called from one
// goroutine at a time (it owns a preallocated stack).
type Program struct {
	code  []instr
	stack []float64
	typ   Type
	unit  string
	nodes int
	slots []int // the slot of each load, in code order
}

// Type is the type of the result.
func (p *Program) Type() Type { return p.typ }

// Unit is the engineering unit of the result; "" when unknown.
func (p *Program) Unit() string { return p.unit }

// Nodes is the number of operators, calls, names and literals.
func (p *Program) Nodes() int { return p.nodes }

// Bind rewrites every name's slot through reg: Eval then reads the value
// of slot s from register reg(s) of the registers it is given.
func (p *Program) Bind(reg func(slot int) int32) {
	k := 0
	for i := range p.code {
		if reads(p.code[i].op) {
			p.code[i].a = reg(p.slots[k])
			k++
		}
	}
}

// Compile parses src and type-checks it against resolve.
func Compile(src string, resolve Resolver) (*Program, error) {
	if len(src) > MaxLen {
		return nil, &Error{Off: 0, Msg: fmt.Sprintf("the expression is %d bytes long; the limit is %d (split it over several expr blocks)", len(src), MaxLen)}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Off: 0, Msg: "the expression is empty"}
	}
	fset := token.NewFileSet()
	x, err := parser.ParseExprFrom(fset, "", unkeyword(src), parser.SkipObjectResolution)
	if err != nil {
		var list scanner.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			return nil, &Error{Off: clampOff(list[0].Pos.Offset, src), Msg: syntaxMsg(list[0].Msg)}
		}
		return nil, &Error{Off: 0, Msg: err.Error()}
	}
	c := &compiler{fset: fset, resolve: resolve, src: src}
	v := c.expr(x, 0)
	if c.err != nil {
		return nil, c.err
	}
	code := c.code
	if fusing {
		code = fuse(code)
	}
	p := &Program{code: code, typ: v.typ, unit: v.unit, nodes: c.nodes, slots: c.slots}
	p.stack = make([]float64, c.maxSP+1)
	return p, nil
}

// unkeyword renames Go's keyword if, which an expression calls as a
// function, to an identifier of the same length, so go/parser reads
// if(c, a, b) as a call and every offset stays where it was; the compiler
// knows the call by the original text.
func unkeyword(src string) string {
	var s scanner.Scanner
	fset := token.NewFileSet()
	b := []byte(src)
	s.Init(fset.AddFile("", -1, len(b)), b, nil, 0)
	for {
		p, tok, _ := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.IF {
			off := fset.Position(p).Offset
			b[off], b[off+1] = '_', 'i'
		}
	}
	return string(b)
}

// reads reports whether an instruction reads a name's register.
func reads(op opcode) bool {
	switch op {
	case opLoad, opAddR, opSubR, opMulR, opDivR, opLtR, opGtR:
		return true
	}
	return false
}

func clampOff(off int, src string) int { return max(0, min(off, len(src))) }

// syntaxMsg says go/parser's message in the config's words.
func syntaxMsg(msg string) string {
	return "syntax error: " + strings.NewReplacer("expected 'EOF'", "expected the end of the expression", "expected operand", "expected a value").Replace(msg)
}

// value is what an expression node gives: a type, a unit, and, for a
// constant, its value.
type value struct {
	typ  Type
	unit string
	k    float64
}

type compiler struct {
	fset    *token.FileSet
	resolve Resolver
	src     string
	code    []instr
	sp      int // stack depth after the code so far
	maxSP   int
	nodes   int
	slots   []int
	err     *Error
}

func (c *compiler) off(p token.Pos) int {
	if !p.IsValid() {
		return 0
	}
	return clampOff(c.fset.Position(p).Offset, c.src)
}

func (c *compiler) fail(p token.Pos, format string, args ...any) value {
	if c.err == nil {
		c.err = &Error{Off: c.off(p), Msg: fmt.Sprintf(format, args...)}
	}
	return value{}
}

func (c *compiler) emit(op opcode, a int32, k float64, push int) int {
	c.code = append(c.code, instr{op: op, a: a, k: k})
	c.sp += push
	c.maxSP = max(c.maxSP, c.sp)
	return len(c.code) - 1
}

func (c *compiler) konst(v value) value {
	c.emit(opConst, 0, v.k, 1)
	return value{typ: v.typ, unit: v.unit}
}

// expr compiles x; its value is on the stack after the code.
func (c *compiler) expr(x ast.Expr, depth int) value {
	if c.err != nil {
		return value{}
	}
	if depth > maxDepth {
		return c.fail(x.Pos(), "the expression nests deeper than %d levels", maxDepth)
	}
	c.nodes++
	switch x := x.(type) {
	case *ast.ParenExpr:
		c.nodes--
		return c.expr(x.X, depth+1)
	case *ast.BasicLit:
		return c.literal(x)
	case *ast.Ident:
		switch x.Name {
		case "true", "false":
			return c.konst(value{typ: Bool, k: b2f(x.Name == "true")})
		}
		return c.name(x.Name, x.Pos())
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		if !ok {
			return c.fail(x.Pos(), "%q is not a name: write block.port, or a tag", c.text(x))
		}
		return c.name(id.Name+"."+x.Sel.Name, x.Pos())
	case *ast.UnaryExpr:
		return c.unary(x, depth)
	case *ast.BinaryExpr:
		return c.binary(x, depth)
	case *ast.CallExpr:
		return c.call(x, depth)
	}
	return c.fail(x.Pos(), "%q is not allowed in an expression (numbers, names, operators and function calls are)", c.text(x))
}

func (c *compiler) text(x ast.Node) string {
	a, b := c.off(x.Pos()), c.off(x.End())
	if b < a {
		return ""
	}
	return c.src[a:b]
}

func (c *compiler) literal(x *ast.BasicLit) value {
	switch x.Kind {
	case token.INT:
		v, err := strconv.ParseInt(strings.ReplaceAll(x.Value, "_", ""), 0, 64)
		if err != nil || v < IntMin || v > IntMax {
			return c.fail(x.Pos(), "%s is beyond the int range %d..%d (write it as a float: %s.0)", x.Value, IntMin, IntMax, x.Value)
		}
		return c.konst(value{typ: Int, k: float64(v)})
	case token.FLOAT:
		v, err := strconv.ParseFloat(strings.ReplaceAll(x.Value, "_", ""), 64)
		if err != nil || math.IsInf(v, 0) {
			return c.fail(x.Pos(), "%s is not a finite number", x.Value)
		}
		return c.konst(value{typ: Float, k: v})
	case token.STRING:
		s, err := strconv.Unquote(x.Value)
		if err != nil || s == "" {
			return c.fail(x.Pos(), "%s is not a name (a string names a tag or block.port)", x.Value)
		}
		return c.name(s, x.Pos())
	}
	return c.fail(x.Pos(), "%s: characters are not values; write a number, a name or a string naming a tag", x.Value)
}

func (c *compiler) name(name string, p token.Pos) value {
	v, msg := c.resolve(name)
	if msg != "" {
		return c.fail(p, "%s", msg)
	}
	c.slots = append(c.slots, v.Slot)
	c.emit(opLoad, int32(v.Slot), 0, 1)
	return value{typ: v.Type, unit: v.Unit}
}

func (c *compiler) unary(x *ast.UnaryExpr, depth int) value {
	v := c.expr(x.X, depth+1)
	if c.err != nil {
		return v
	}
	switch x.Op {
	case token.ADD:
		c.nodes--
		if v.typ == Bool {
			return c.fail(x.Pos(), "+ takes a number; %s is a bool", c.text(x.X))
		}
		return v
	case token.SUB:
		switch v.typ {
		case Bool:
			return c.fail(x.Pos(), "- takes a number; %s is a bool", c.text(x.X))
		case Int:
			c.emit(opINeg, 0, 0, 0)
		default:
			c.emit(opNeg, 0, 0, 0)
		}
		return value{typ: v.typ, unit: v.unit}
	case token.NOT:
		if v.typ != Bool {
			return c.fail(x.Pos(), "! takes a bool; %s is a %s (compare it: %s != 0)", c.text(x.X), v.typ, c.text(x.X))
		}
		c.emit(opNot, 0, 0, 0)
		return value{typ: Bool}
	}
	return c.fail(x.Pos(), "operator %s is not allowed (use -, ! or a function)", x.Op)
}

func (c *compiler) binary(x *ast.BinaryExpr, depth int) value {
	if x.Op == token.LAND || x.Op == token.LOR {
		return c.logic(x, depth)
	}
	l := c.expr(x.X, depth+1)
	r := c.expr(x.Y, depth+1)
	if c.err != nil {
		return l
	}
	opPos := x.OpPos
	switch x.Op {
	case token.ADD, token.SUB, token.MUL, token.QUO, token.REM:
		if l.typ == Bool || r.typ == Bool {
			return c.fail(opPos, "%s takes numbers; %s is a bool (convert it with bool_to_int)", x.Op, c.text(pick(l.typ == Bool, x.X, x.Y)))
		}
		unit := ""
		if x.Op == token.ADD || x.Op == token.SUB || x.Op == token.REM {
			var ok bool
			if unit, ok = c.sameUnit(opPos, x.Op.String(), l, r, x.X, x.Y); !ok {
				return value{}
			}
		}
		if l.typ == Int && r.typ == Int {
			c.emit(intOps[x.Op], 0, 0, -1)
			return value{typ: Int, unit: unit}
		}
		c.emit(floatOps[x.Op], 0, 0, -1)
		return value{typ: Float, unit: unit}
	case token.EQL, token.NEQ, token.LSS, token.LEQ, token.GTR, token.GEQ:
		if (l.typ == Bool) != (r.typ == Bool) {
			return c.fail(opPos, "%s compares a bool with a number", x.Op)
		}
		if l.typ == Bool && x.Op != token.EQL && x.Op != token.NEQ {
			return c.fail(opPos, "%s orders numbers; bools are only == or !=", x.Op)
		}
		if _, ok := c.sameUnit(opPos, x.Op.String(), l, r, x.X, x.Y); !ok {
			return value{}
		}
		c.emit(cmpOps[x.Op], 0, 0, -1)
		return value{typ: Bool}
	case token.AND, token.OR:
		return c.fail(opPos, "%s is a bit operator; for bools write %s%s", x.Op, x.Op, x.Op)
	}
	return c.fail(opPos, "operator %s is not allowed (use + - * / %% == != < <= > >= && || !)", x.Op)
}

func pick(first bool, a, b ast.Expr) ast.Expr {
	if first {
		return a
	}
	return b
}

// sameUnit is the unit of two operands that must agree.
func (c *compiler) sameUnit(p token.Pos, what string, l, r value, lx, rx ast.Expr) (string, bool) {
	switch {
	case l.unit == "":
		return r.unit, true
	case r.unit == "" || unitsMatch(l.unit, r.unit):
		return l.unit, true
	}
	c.fail(p, "%s: %s is in %s but %s is in %s (units must match; convert one, e.g. %s * factor)", what, c.text(lx), l.unit, c.text(rx), r.unit, c.text(rx))
	return "", false
}

// unitsMatch compares units as configs does: case and spaces aside.
func unitsMatch(a, b string) bool {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	return norm(a) == norm(b)
}

// logic compiles && and || so the right side runs only when it decides.
func (c *compiler) logic(x *ast.BinaryExpr, depth int) value {
	l := c.expr(x.X, depth+1)
	if c.err == nil && l.typ != Bool {
		return c.fail(x.OpPos, "%s takes bools; %s is a %s", x.Op, c.text(x.X), l.typ)
	}
	op := opJumpFalseKeep
	if x.Op == token.LOR {
		op = opJumpTrueKeep
	}
	j := c.emit(op, 0, 0, 0)
	c.emit(opPop, 0, 0, -1)
	r := c.expr(x.Y, depth+1)
	if c.err == nil && r.typ != Bool {
		return c.fail(x.OpPos, "%s takes bools; %s is a %s", x.Op, c.text(x.Y), r.typ)
	}
	c.code[j].a = int32(len(c.code))
	return value{typ: Bool}
}

// Funcs lists the functions an expression may call, with their arguments.
var Funcs = []string{
	"abs(x)", "sqrt(x)", "ln(x)", "log(x) (base 10)", "exp(x)", "expt(x, y) (x to the power y)",
	"sin(x)", "cos(x)", "tan(x)", "asin(x)", "acos(x)", "atan(x)",
	"min(a, b, ...)", "max(a, b, ...)", "limit(mn, x, mx)", "sel(g, in0, in1)", "if(c, a, b)",
	"trunc(x) (toward zero, to int)", "real_to_int(x) (rounded, half away from zero)", "int_to_real(x)",
	"bool_to_int(b)", "bool_to_real(b)", "int_to_bool(x) (x != 0)", "real_to_bool(x) (x != 0)",
}

// math1 are the functions of one number giving a float.
var math1 = map[string]opcode{
	"sqrt": opSqrt, "ln": opLn, "log": opLog, "exp": opExp, "sin": opSin, "cos": opCos,
	"tan": opTan, "asin": opAsin, "acos": opAcos, "atan": opAtan,
}

func (c *compiler) call(x *ast.CallExpr, depth int) value {
	id, ok := x.Fun.(*ast.Ident)
	if !ok {
		return c.fail(x.Pos(), "%q is not a function (functions: %s)", c.text(x.Fun), funcNames())
	}
	name := id.Name
	if o := c.off(id.Pos()); name == "_i" && strings.HasPrefix(c.src[o:], "if") {
		name = "if"
	}
	if x.Ellipsis.IsValid() {
		return c.fail(x.Ellipsis, "... is not allowed in a call")
	}
	argc := func(n int) bool {
		if len(x.Args) != n {
			c.fail(x.Pos(), "%s takes %d argument%s, not %d", name, n, plural(n), len(x.Args))
			return false
		}
		return true
	}
	number := func(i int, v value) bool {
		if v.typ == Bool && c.err == nil {
			c.fail(x.Args[i].Pos(), "%s takes numbers; %s is a bool (convert it with bool_to_int)", name, c.text(x.Args[i]))
		}
		return c.err == nil
	}
	switch {
	case name == "if":
		return c.ifCall(x, depth)
	case math1[name] != 0:
		if !argc(1) {
			return value{}
		}
		if v := c.expr(x.Args[0], depth+1); !number(0, v) {
			return value{}
		}
		c.emit(math1[name], 0, 0, 0)
		return value{typ: Float}
	case name == "abs":
		if !argc(1) {
			return value{}
		}
		v := c.expr(x.Args[0], depth+1)
		if !number(0, v) {
			return value{}
		}
		c.emit(pickOp(v.typ == Int, opIAbs, opAbs), 0, 0, 0)
		return value{typ: v.typ, unit: v.unit}
	case name == "expt":
		if !argc(2) {
			return value{}
		}
		a := c.expr(x.Args[0], depth+1)
		b := c.expr(x.Args[1], depth+1)
		if !number(0, a) || !number(1, b) {
			return value{}
		}
		c.emit(opExpt, 0, 0, -1)
		return value{typ: Float}
	case name == "min" || name == "max":
		if len(x.Args) < 2 {
			return c.fail(x.Pos(), "%s takes 2 or more arguments, not %d", name, len(x.Args))
		}
		var acc value
		for i, a := range x.Args {
			v := c.expr(a, depth+1)
			if !number(i, v) {
				return value{}
			}
			if i == 0 {
				acc = v
				continue
			}
			u, ok := c.sameUnit(a.Pos(), name, acc, v, x.Args[0], a)
			if !ok {
				return value{}
			}
			c.emit(pickOp(name == "min", opMin, opMax), 0, 0, -1)
			acc = value{typ: pickType(acc.typ == Int && v.typ == Int, Int, Float), unit: u}
		}
		return acc
	case name == "limit":
		if !argc(3) {
			return value{}
		}
		var vs [3]value
		for i, a := range x.Args {
			if vs[i] = c.expr(a, depth+1); !number(i, vs[i]) {
				return value{}
			}
		}
		u, ok := c.sameUnit(x.Args[1].Pos(), name, vs[0], vs[1], x.Args[0], x.Args[1])
		if ok {
			u, ok = c.sameUnit(x.Args[2].Pos(), name, value{unit: u}, vs[2], x.Args[1], x.Args[2])
		}
		if !ok {
			return value{}
		}
		c.emit(opLimit, 0, 0, -2)
		all := vs[0].typ == Int && vs[1].typ == Int && vs[2].typ == Int
		return value{typ: pickType(all, Int, Float), unit: u}
	case name == "sel":
		if !argc(3) {
			return value{}
		}
		g := c.expr(x.Args[0], depth+1)
		if c.err == nil && g.typ != Bool {
			return c.fail(x.Args[0].Pos(), "sel's first argument is a bool; %s is a %s", c.text(x.Args[0]), g.typ)
		}
		a := c.expr(x.Args[1], depth+1)
		b := c.expr(x.Args[2], depth+1)
		if c.err != nil {
			return value{}
		}
		t, u, ok := c.branches(x.Args[2].Pos(), "sel", a, b, x.Args[1], x.Args[2])
		if !ok {
			return value{}
		}
		c.emit(opSel, 0, 0, -2)
		return value{typ: t, unit: u}
	case isConversion(name):
		if !argc(1) {
			return value{}
		}
		v := c.expr(x.Args[0], depth+1)
		if c.err != nil {
			return value{}
		}
		conv := conversions[name]
		c.emit(conv.op, 0, 0, 0)
		unit := v.unit
		if conv.to == Bool {
			unit = ""
		}
		return value{typ: conv.to, unit: unit}
	}
	return c.fail(x.Pos(), "unknown function %q (functions: %s)", name, funcNames())
}

func isConversion(name string) bool { _, ok := conversions[name]; return ok }

// conversions are the type conversions by name. They take a value of any
// type: the name says what the engineer means.
var conversions = map[string]struct {
	op opcode
	to Type
}{
	"trunc":        {opTrunc, Int},
	"real_to_int":  {opRound, Int},
	"int_to_real":  {opNop, Float},
	"bool_to_real": {opBool, Float},
	"bool_to_int":  {opBool, Int},
	"int_to_bool":  {opBool, Bool},
	"real_to_bool": {opBool, Bool},
}

// branches is the type and unit of two values one of which is chosen.
func (c *compiler) branches(p token.Pos, what string, a, b value, ax, bx ast.Expr) (Type, string, bool) {
	if (a.typ == Bool) != (b.typ == Bool) {
		c.fail(p, "%s chooses between a bool and a number; both must be bools or both numbers", what)
		return 0, "", false
	}
	u, ok := c.sameUnit(p, what, a, b, ax, bx)
	t := a.typ
	if a.typ != b.typ {
		t = Float
	}
	return t, u, ok
}

// ifCall compiles if(c, a, b): only the chosen branch runs.
func (c *compiler) ifCall(x *ast.CallExpr, depth int) value {
	if len(x.Args) != 3 {
		return c.fail(x.Pos(), "if takes 3 arguments (condition, then, else), not %d", len(x.Args))
	}
	cond := c.expr(x.Args[0], depth+1)
	if c.err == nil && cond.typ != Bool {
		return c.fail(x.Args[0].Pos(), "if's condition is a bool; %s is a %s (compare it: %s != 0)", c.text(x.Args[0]), cond.typ, c.text(x.Args[0]))
	}
	jElse := c.emit(opJumpFalse, 0, 0, -1)
	a := c.expr(x.Args[1], depth+1)
	jEnd := c.emit(opJump, 0, 0, -1)
	c.code[jElse].a = int32(len(c.code))
	b := c.expr(x.Args[2], depth+1)
	c.code[jEnd].a = int32(len(c.code))
	if c.err != nil {
		return value{}
	}
	t, u, ok := c.branches(x.Args[2].Pos(), "if", a, b, x.Args[1], x.Args[2])
	if !ok {
		return value{}
	}
	return value{typ: t, unit: u}
}

func funcNames() string {
	names := make([]string, 0, len(Funcs))
	for _, f := range Funcs {
		name, _, _ := strings.Cut(f, "(")
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pickOp(first bool, a, b opcode) opcode {
	if first {
		return a
	}
	return b
}

func pickType(first bool, a, b Type) Type {
	if first {
		return a
	}
	return b
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
