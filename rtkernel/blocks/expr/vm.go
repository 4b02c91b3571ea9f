package expr

import (
	"go/token"
	"math"
)

// opcode is an instruction of a compiled expression.
type opcode uint8

// The opcodes. Each works on the top of the value stack.
const (
	opNop opcode = iota
	opConst
	opLoad
	opPop
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opIAdd
	opISub
	opIMul
	opIDiv
	opIMod
	opNeg
	opINeg
	opNot
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opJump
	opJumpFalse     // pops the condition
	opJumpFalseKeep // keeps it when jumping (&&)
	opJumpTrueKeep  // keeps it when jumping (||)
	opAbs
	opIAbs
	opSqrt
	opLn
	opLog
	opExp
	opSin
	opCos
	opTan
	opAsin
	opAcos
	opAtan
	opExpt
	opMin
	opMax
	opLimit
	opSel
	opTrunc
	opRound
	opBool
	// Fused: a binary operation whose right operand is a register (R) or
	// a constant (K), so a + 2 is two instructions, not three.
	opAddR
	opSubR
	opMulR
	opDivR
	opLtR
	opGtR
	opAddK
	opSubK
	opMulK
	opDivK
	opLtK
	opGtK
)

// fusable maps an operation to its forms with a register and a constant
// right operand.
var fusable = map[opcode][2]opcode{
	opAdd: {opAddR, opAddK}, opSub: {opSubR, opSubK}, opMul: {opMulR, opMulK},
	opDiv: {opDivR, opDivK}, opLt: {opLtR, opLtK}, opGt: {opGtR, opGtK},
}

// fuse rewrites "load r; op" and "const k; op" as one instruction where
// no jump lands on op, and moves the jump targets to match.
func fuse(code []instr) []instr {
	target := make([]bool, len(code)+1)
	for _, in := range code {
		if isJump(in.op) {
			target[in.a] = true
		}
	}
	at := make([]int32, len(code)+1) // old index -> new index
	out := make([]instr, 0, len(code))
	for i := 0; i < len(code); i++ {
		at[i] = int32(len(out))
		in := code[i]
		if f, ok := fusable[nextOp(code, i)]; ok && !target[i+1] && (in.op == opLoad || in.op == opConst) {
			in.op = f[0]
			if code[i].op == opConst {
				in.op = f[1]
			}
			out = append(out, in)
			i++
			at[i] = int32(len(out) - 1)
			continue
		}
		out = append(out, in)
	}
	at[len(code)] = int32(len(out))
	for i := range out {
		if isJump(out[i].op) {
			out[i].a = at[out[i].a]
		}
	}
	return out
}

func nextOp(code []instr, i int) opcode {
	if i+1 < len(code) {
		return code[i+1].op
	}
	return opNop
}

func isJump(op opcode) bool {
	return op == opJump || op == opJumpFalse || op == opJumpFalseKeep || op == opJumpTrueKeep
}

var (
	floatOps = map[token.Token]opcode{token.ADD: opAdd, token.SUB: opSub, token.MUL: opMul, token.QUO: opDiv, token.REM: opMod}
	intOps   = map[token.Token]opcode{token.ADD: opIAdd, token.SUB: opISub, token.MUL: opIMul, token.QUO: opIDiv, token.REM: opIMod}
	cmpOps   = map[token.Token]opcode{token.EQL: opEq, token.NEQ: opNe, token.LSS: opLt, token.LEQ: opLe, token.GTR: opGt, token.GEQ: opGe}
)

// instr is one instruction: an opcode, a register or jump target, a
// constant.
type instr struct {
	op opcode
	a  int32
	k  float64
}

// Eval runs the program over the registers r (a name of slot s reads
// r[s], or the register Bind gave it) and returns the result; ok is false
// when an operation failed (see the package doc for the defined result).
//
// Hot path: no allocation.
func (p *Program) Eval(r []float64) (v float64, ok bool) {
	s, code := p.stack, p.code
	sp := -1
	ok = true
	for pc := 0; pc < len(code); pc++ {
		in := &code[pc]
		switch in.op {
		case opConst:
			sp++
			s[sp] = in.k
		case opLoad:
			sp++
			s[sp] = r[in.a]
		case opPop:
			sp--
		case opAddR:
			s[sp] += r[in.a]
		case opAddK:
			s[sp] += in.k
		case opSubR:
			s[sp] -= r[in.a]
		case opSubK:
			s[sp] -= in.k
		case opMulR:
			s[sp] *= r[in.a]
		case opMulK:
			s[sp] *= in.k
		case opDivR:
			if d := r[in.a]; d == 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] /= d
			}
		case opDivK:
			if in.k == 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] /= in.k
			}
		case opLtR:
			s[sp] = b2f(s[sp] < r[in.a])
		case opLtK:
			s[sp] = b2f(s[sp] < in.k)
		case opGtR:
			s[sp] = b2f(s[sp] > r[in.a])
		case opGtK:
			s[sp] = b2f(s[sp] > in.k)
		case opAdd:
			sp--
			s[sp] += s[sp+1]
		case opSub:
			sp--
			s[sp] -= s[sp+1]
		case opMul:
			sp--
			s[sp] *= s[sp+1]
		case opDiv:
			sp--
			if s[sp+1] == 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] /= s[sp+1]
			}
		case opMod:
			sp--
			if s[sp+1] == 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Mod(s[sp], s[sp+1])
			}
		case opIAdd:
			sp--
			s[sp], ok = intResult(s[sp]+s[sp+1], ok)
		case opISub:
			sp--
			s[sp], ok = intResult(s[sp]-s[sp+1], ok)
		case opIMul:
			sp--
			s[sp], ok = intResult(s[sp]*s[sp+1], ok)
		case opIDiv:
			sp--
			if s[sp+1] == 0 {
				s[sp], ok = 0, false
			} else {
				s[sp], ok = intResult(math.Trunc(s[sp]/s[sp+1]), ok)
			}
		case opIMod:
			sp--
			if s[sp+1] == 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Mod(s[sp], s[sp+1])
			}
		case opNeg:
			s[sp] = -s[sp]
		case opINeg:
			s[sp], ok = intResult(-s[sp], ok)
		case opNot:
			s[sp] = b2f(s[sp] == 0)
		case opEq:
			sp--
			s[sp] = b2f(s[sp] == s[sp+1])
		case opNe:
			sp--
			s[sp] = b2f(s[sp] != s[sp+1])
		case opLt:
			sp--
			s[sp] = b2f(s[sp] < s[sp+1])
		case opLe:
			sp--
			s[sp] = b2f(s[sp] <= s[sp+1])
		case opGt:
			sp--
			s[sp] = b2f(s[sp] > s[sp+1])
		case opGe:
			sp--
			s[sp] = b2f(s[sp] >= s[sp+1])
		case opJump:
			pc = int(in.a) - 1
		case opJumpFalse:
			if s[sp] == 0 {
				pc = int(in.a) - 1
			}
			sp--
		case opJumpFalseKeep:
			if s[sp] == 0 {
				pc = int(in.a) - 1
			}
		case opJumpTrueKeep:
			if s[sp] != 0 {
				pc = int(in.a) - 1
			}
		case opAbs:
			s[sp] = math.Abs(s[sp])
		case opIAbs:
			s[sp], ok = intResult(math.Abs(s[sp]), ok)
		case opSqrt:
			if s[sp] < 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Sqrt(s[sp])
			}
		case opLn:
			if s[sp] <= 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Log(s[sp])
			}
		case opLog:
			if s[sp] <= 0 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Log10(s[sp])
			}
		case opExp:
			s[sp] = math.Exp(s[sp])
		case opSin:
			s[sp] = math.Sin(s[sp])
		case opCos:
			s[sp] = math.Cos(s[sp])
		case opTan:
			s[sp] = math.Tan(s[sp])
		case opAsin:
			if s[sp] < -1 || s[sp] > 1 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Asin(s[sp])
			}
		case opAcos:
			if s[sp] < -1 || s[sp] > 1 {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Acos(s[sp])
			}
		case opAtan:
			s[sp] = math.Atan(s[sp])
		case opExpt:
			sp--
			if s[sp] == 0 && s[sp+1] < 0 || s[sp] < 0 && s[sp+1] != math.Trunc(s[sp+1]) {
				s[sp], ok = 0, false
			} else {
				s[sp] = math.Pow(s[sp], s[sp+1])
			}
		case opMin:
			sp--
			s[sp] = math.Min(s[sp], s[sp+1])
		case opMax:
			sp--
			s[sp] = math.Max(s[sp], s[sp+1])
		case opLimit:
			sp -= 2
			mn, x, mx := s[sp], s[sp+1], s[sp+2]
			if mn > mx {
				ok = false
			}
			s[sp] = math.Max(mn, math.Min(x, mx))
		case opSel:
			sp -= 2
			if s[sp] == 0 {
				s[sp] = s[sp+1]
			} else {
				s[sp] = s[sp+2]
			}
		case opTrunc:
			s[sp], ok = intResult(math.Trunc(s[sp]), ok)
		case opRound:
			s[sp], ok = intResult(math.Round(s[sp]), ok)
		case opBool:
			s[sp] = b2f(s[sp] != 0)
		}
	}
	v = s[0]
	switch {
	case v != v: // NaN
		return 0, false
	case v > math.MaxFloat64:
		return math.MaxFloat64, false
	case v < -math.MaxFloat64:
		return -math.MaxFloat64, false
	}
	return v, ok
}

// intResult saturates an int result to DINT; ok turns false when it had to.
func intResult(v float64, ok bool) (float64, bool) {
	switch {
	case v > IntMax:
		return IntMax, false
	case v < IntMin:
		return IntMin, false
	case v != v:
		return 0, false
	}
	return v, ok
}
