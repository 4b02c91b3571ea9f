package blocks

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks/expr"
	"github.com/mkrt/mkrt/shm/tag"
)

// Errors of the run-time interface, classified with errors.Is.
var (
	// ErrUnknownBlock: SetParam or Param named a block the task does not run.
	ErrUnknownBlock = errors.New("blocks: unknown block")
	// ErrUnknownParam: the block type has no such parameter.
	ErrUnknownParam = errors.New("blocks: unknown parameter")
	// ErrParamValue: the value is out of the parameter's range or conflicts
	// with another parameter of the block.
	ErrParamValue = errors.New("blocks: bad parameter value")
	// ErrState: LoadState got state saved from another program.
	ErrState = errors.New("blocks: state does not fit the program")
)

// Program is every task's compiled program.
type Program struct {
	tasks  []*TaskProgram
	byName map[string]*TaskProgram
}

// Task returns the named task's program, or nil if there is no such task.
func (p *Program) Task(name string) *TaskProgram {
	if p == nil {
		return nil
	}
	return p.byName[name]
}

// Tasks returns the task programs in config order.
func (p *Program) Tasks() []*TaskProgram { return p.tasks }

// SetEpoch sets, for every task, the Unix time in nanoseconds of monotonic
// time zero; see TaskProgram.SetEpoch.
func (p *Program) SetEpoch(unixNanos int64) {
	for _, tp := range p.tasks {
		tp.SetEpoch(unixNanos)
	}
}

// instr is one instruction of a flat program: an opcode and where its
// operands live.
type instr struct {
	op   opcode
	hold bool   // keep state and outputs while an input is bad
	nin  uint16 // input registers, at args[args:args+nin]
	nout uint16 // output registers, out..out+nout-1
	args int32
	out  int32
	par  int32 // first parameter in params
	st   int32 // first state slot in state
	x    int32 // opExpr: the expression, in exprs
	gate int32 // a register the instruction runs only while it is not 0 (a sequence's enable); 0: always
}

// move copies one tag to or from a register.
type move struct {
	reg int32
	id  tag.ID
}

// blockInfo locates one block's parameters and state.
type blockInfo struct {
	name string
	typ  *blockType
	par  int32
	st   int32
	out  int32 // first output register
}

// TaskProgram is one task's compiled program. Run, SaveState, LoadState and
// SetParam must be called from one goroutine (the task's), between cycles.
type TaskProgram struct {
	name   string
	tab    *tag.Table
	code   []instr
	args   []int32
	regs   []float64
	qual   []uint16 // rank<<8 | reason, see qcode
	params []float64
	state  []float64
	loads  []move // tags copied into registers at cycle start
	stores []move // registers copied into tags at cycle end
	inputs []tag.ID
	output []tag.ID
	blocks []blockInfo
	index  map[string]int32 // block name -> blocks index
	epoch  int64
	print  float64 // fingerprint of the program's state layout
	seen   []bool  // ImportState scratch, one per block
	exprs  []*expr.Program
	steps  [][]string // each sequence's step names, for the tag its name output writes

	// For schedulers: the cycle's Unix time in nanoseconds (epoch + now)
	// and the plant's time zone (metadata.timezone).
	wall int64
	loc  *time.Location
}

// Name is the task's name.
func (tp *TaskProgram) Name() string { return tp.name }

// Outputs returns the tags written by this task.
func (tp *TaskProgram) Outputs() []tag.ID { return tp.output }

// Inputs returns the tags read by this task at the start of each cycle
// (tags written by the task's own blocks are wired directly and are not
// listed).
func (tp *TaskProgram) Inputs() []tag.ID { return tp.inputs }

// Len is the number of blocks.
func (tp *TaskProgram) Len() int { return len(tp.blocks) }

// Blocks returns the block names in the order they run (delay blocks last).
func (tp *TaskProgram) Blocks() []string {
	names := make([]string, len(tp.blocks))
	for i, b := range tp.blocks {
		names[i] = b.name
	}
	return names
}

// StateLen is the length of what SaveState appends.
func (tp *TaskProgram) StateLen() int { return 1 + len(tp.state) }

// SetEpoch sets the Unix time in nanoseconds of monotonic time zero, so that
// output samples carry Time = unixNanos + now. The default, 0, writes the
// cycle's monotonic time.
func (tp *TaskProgram) SetEpoch(unixNanos int64) { tp.epoch = unixNanos }

// SaveState appends the task's state (integrators, filters, timers,
// counters, delays, preceded by a fingerprint of the program) to dst and
// returns the extended slice. It allocates nothing when dst has room for
// StateLen more values.
func (tp *TaskProgram) SaveState(dst []float64) []float64 {
	dst = append(dst, tp.print)
	return append(dst, tp.state...)
}

// LoadState restores state saved by SaveState of the same program (same
// blocks in the same order); the next Run continues from it. Parameters are
// not part of the state.
func (tp *TaskProgram) LoadState(src []float64) error {
	if len(src) != tp.StateLen() {
		return fmt.Errorf("%w: task %q wants %d values, got %d", ErrState, tp.name, tp.StateLen(), len(src))
	}
	if src[0] != tp.print {
		return fmt.Errorf("%w: task %q: the state was saved from a program with other blocks", ErrState, tp.name)
	}
	copy(tp.state, src[1:])
	// Outputs held by a block while its input is bad come from the state.
	for i := range tp.code {
		in := &tp.code[i]
		if in.op == opPID && tp.state[in.st+pidStInit] != 0 {
			tp.regs[in.out] = tp.state[in.st+pidStOut]
		}
	}
	return nil
}

// Param returns a parameter's current value (durations in seconds, bools 1
// or 0, op as its index in gt, ge, lt, le, eq, ne).
func (tp *TaskProgram) Param(block, param string) (float64, error) {
	b, k, err := tp.lookupParam(block, param)
	if err != nil {
		return 0, err
	}
	return tp.params[b.par+int32(k)], nil
}

func (tp *TaskProgram) lookupParam(block, param string) (*blockInfo, int, error) {
	bi, ok := tp.index[block]
	if !ok {
		return nil, 0, fmt.Errorf("%w %q in task %q", ErrUnknownBlock, block, tp.name)
	}
	b := &tp.blocks[bi]
	for k := range b.typ.Params {
		if b.typ.Params[k].Name == param {
			return b, k, nil
		}
	}
	return nil, 0, fmt.Errorf("%w %q of %s block %q", ErrUnknownParam, param, b.typ.Name, block)
}

// SetParam changes one parameter at a cycle boundary: gains, limits,
// setpoints, deadbands, times (in seconds), bools (1 or 0), compare's op
// (its index in gt, ge, lt, le, eq, ne): ParamValue reads a value as a
// config writes it into this form. The value is checked as the compiler
// checks the config (range, and together with the block's other
// parameters); on error nothing changes. A pid's kp change re-balances its
// integral so the output does not step. SetParam allocates nothing when it
// succeeds.
func (tp *TaskProgram) SetParam(block, param string, v float64) error {
	b, k, err := tp.lookupParam(block, param)
	if err != nil {
		return err
	}
	spec := &b.typ.Params[k]
	if msg := paramRange(spec, v); msg != "" {
		return fmt.Errorf("%w: %s.%s = %v: %s", ErrParamValue, block, param, v, msg)
	}
	p := tp.params[b.par : b.par+int32(len(b.typ.Params))]
	old := p[k]
	p[k] = v
	if b.typ.check != nil {
		if _, msg := b.typ.check(p); msg != "" {
			p[k] = old
			return fmt.Errorf("%w: %s.%s = %v: %s", ErrParamValue, block, param, v, msg)
		}
	}
	switch {
	case b.typ.op == opLag:
		tp.params[b.par+1] = -1 // recompute the cached coefficient
	case b.typ.op == opPID && k == pidN:
		tp.params[b.par+pidTf] = 0 // the ratio replaces a time constant from the config
	case b.typ.op == opPID && k == pidKp:
		s := tp.state[b.st:]
		if s[pidStInit] != 0 {
			s[pidStI] -= (v - old) * s[pidStErr]
			if old != 0 {
				s[pidStD] *= v / old
			}
		}
	}
	return nil
}

// SetParamPath is SetParam with the block and parameter in one
// "block.param" name, as commands from SCADA carry them.
func (tp *TaskProgram) SetParamPath(name string, v float64) error {
	block, param, ok := strings.Cut(name, ".")
	if !ok {
		return fmt.Errorf("%w %q: write block.param", ErrUnknownParam, name)
	}
	return tp.SetParam(block, param, v)
}

// Dotted is a TaskProgram whose SetParam takes one "block.param" name, for
// callers whose parameter interface is SetParam(name string, v float64).
type Dotted struct{ *TaskProgram }

// SetParam changes the parameter named "block.param"; see
// TaskProgram.SetParam.
func (d Dotted) SetParam(name string, v float64) error { return d.SetParamPath(name, v) }

// CompileTask compiles cfg for tab and returns task's program, its
// source timestamps on the Unix epoch of monotonic zero (unixNanos), as an
// executive's task runs it: the body of an executive.Programs function.
func CompileTask(cfg *configs.Config, tab *tag.Table, task string, unixNanos int64) (Dotted, error) {
	p, err := Compile(cfg, tab)
	if err != nil {
		return Dotted{}, err
	}
	tp := p.Task(task)
	if tp == nil {
		return Dotted{}, fmt.Errorf("blocks: no program for task %q", task)
	}
	p.SetEpoch(unixNanos)
	return Dotted{TaskProgram: tp}, nil
}

// paramRange checks one parameter value on its own; "" when it is fine.
func paramRange(spec *configs.BlockParam, v float64) string {
	switch {
	case math.IsNaN(v):
		if spec.Optional {
			return ""
		}
		return "not a number"
	case spec.Kind == configs.ParamRatio:
		if v <= 0 || math.IsInf(v, 1) {
			return "must be above 0"
		}
	case spec.Kind == configs.ParamNonNeg || spec.Kind == configs.ParamDuration:
		if v < 0 || math.IsInf(v, 1) {
			return "must be 0 or more"
		}
	case spec.Kind == configs.ParamBool:
		if v != 0 && v != 1 {
			return "a bool must be 0 or 1"
		}
	case spec.Kind == configs.ParamEnum:
		if v != math.Trunc(v) || v < 0 || int(v) >= len(spec.Enum) {
			return fmt.Sprintf("must be the index of one of %v", spec.Enum)
		}
	}
	return ""
}

// Qualities are ranked so the worst is the largest: a register's quality is
// rank<<8 | reason, and the worst of several is their maximum.
var (
	rankOf    = [...]uint16{tag.Bad: 3, tag.Good: 0, tag.Uncertain: 1, tag.Stale: 2}
	qualityOf = [...]tag.Quality{tag.Good, tag.Uncertain, tag.Stale, tag.Bad}
)

const badRank = 3 << 8

func qcode(q tag.Quality, r tag.Reason) uint16 {
	rank := uint16(3)
	if int(q) < len(rankOf) {
		rank = rankOf[q]
	}
	return rank<<8 | uint16(r)
}

// Run executes one cycle: it reads the input tags, runs the blocks in
// dependency order and writes the output tags (value, the worst quality of
// the inputs behind it, Time = epoch + now). now is the cycle's scheduled
// monotonic time and dt the time since the previous cycle.
//
// Hot path: no allocation, no locks, no system calls.
func (tp *TaskProgram) Run(now time.Duration, dt time.Duration) {
	if dt < 0 {
		dt = 0
	}
	smp := tp.tab.Samples
	regs, qual := tp.regs, tp.qual
	for _, l := range tp.loads {
		s := &smp[l.id]
		regs[l.reg] = s.Value
		qual[l.reg] = qcode(s.Quality, s.Reason)
	}
	dts, dtn := dt.Seconds(), float64(dt)
	tp.wall = tp.epoch + int64(now)
	tp.exec(dts, dtn)
	t := tp.epoch + int64(now)
	for _, l := range tp.stores {
		q := qual[l.reg]
		smp[l.id] = tag.Sample{Value: regs[l.reg], Quality: qualityOf[q>>8], Reason: tag.Reason(q), Time: t}
	}
}
