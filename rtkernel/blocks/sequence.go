package blocks

import (
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// A sequence block is a subset of an IEC 61131-3 sequential function chart:
// named steps, one active at a time, each giving tags their values while it
// is active (set:), left through the first of its transitions (next:) whose
// bool condition holds once the step has been active for its min_time; a
// step active for its timeout turns the alarm output on. Rising edges of
// the hold and resume inputs freeze the sequence and let it go on; while
// abort is on, the sequence is in its initial step and takes no transition. The step (its index in the list) and
// the time in it are outputs; the position is state, carried across a
// hand-over by step name, and restored at start from the tags the step and
// time outputs write when those are retain tags.
//
// A tag's value is a function of the active step alone (the step's set:
// value, else the initial step's, else 0), so whatever restores the step
// restores every action. So is whether a block a step enables (enable:)
// runs: only while a step naming it is active; otherwise it keeps its
// state and outputs, as while its input is bad.

// opSequence runs a sequence block. It lies beyond the iota list of
// spec.go and the process blocks' (200 on), so that types added there
// do not move it.
const opSequence opcode = 240

// The sequence's parameters: a head, a row per step, then its transitions
// and its action values.
const (
	seqSteps   = iota // number of steps
	seqTags           // number of action columns: the tags set, then the blocks enabled
	seqStepTag        // the retain tag the step output writes, or -1
	seqTimeTag        // the retain tag the time output writes, or -1
	seqNameTag        // the string tag the name output writes, or -1
	seqNames          // the sequence's step names in TaskProgram.steps
	seqHead
)

// A step's row.
const (
	rowMin     = iota // min_time, ns
	rowTimeout        // timeout, ns (+Inf: none)
	rowNext           // where its transitions start in the parameters
	rowCount          // how many transitions it has
	rowSet            // where its action values start in the parameters
	rowHash           // hash of its name: what a hand-over carries
	rowLen
)

// The sequence's state.
const (
	seqStInit   = iota // 1 once the sequence has run
	seqStStep          // the active step's index
	seqStTime          // time in the step, ns
	seqStHeld          // 1 while held
	seqStAlarm         // 1 when the step's timeout has passed
	seqStHold          // last cycle's hold, resume and abort inputs
	seqStResume        //
	seqStAbort         //
	seqStHash          // the active step's name hash
	seqStLen
)

// Its fixed ports: the command inputs and the published outputs.
const (
	seqInHold, seqInResume, seqInAbort, seqIns                           = 0, 1, 2, 3
	seqOutStep, seqOutTime, seqOutAlarm, seqOutHeld, seqOutName, seqOuts = 0, 1, 2, 3, 4, 5
)

var sequenceCatalogue = []*blockType{
	{BlockType: configs.BlockType{Name: "sequence",
		Doc:     "sequence (IEC 61131-3 SFC subset): named steps (steps:), each setting tags (set:) and enabling blocks (enable:) while active, left by the first transition (next: to, when) whose bool condition holds after min_time; timeout turns alarm on; rising edges of hold and resume freeze it and let it go on; while abort is on it is in its initial step",
		Inputs:  []configs.BlockPort{port("hold", boolean), port("resume", boolean), port("abort", boolean)},
		Outputs: []configs.BlockPort{port("step", num), port("time", num), port("alarm", boolean), port("held", boolean), port("name", num)}},
		op: opSequence, state: seqStLen},
}

// stepHash is the hash a step is carried by across a hand-over: exact in
// a float64.
func stepHash(name string) float64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return float64(h.Sum32())
}

// sequences checks and lays out every sequence block: its steps, the tags
// its steps set (one writer per tag, as for outputs) and its transitions,
// whose conditions become inputs after the fixed ones. It runs after the
// wiring, before the expressions are compiled.
func (c *compiler) sequences() {
	written := map[tag.ID]*node{} // action tags, by the sequence setting them
	gated := map[*node]bool{}     // blocks enabled by a sequence's steps
	for _, nodes := range c.nodes {
		for _, n := range nodes {
			switch {
			case n.typ == nil:
			case n.typ.op == opSequence:
				c.sequence(n, written, gated)
			case len(n.b.Steps) > 0:
				c.errs.Add(c.cfg.FieldPos(&n.b.Steps, n.b.Pos), "%s takes no steps: (only sequence blocks do)", n.what())
			}
		}
	}
}

// sequence checks one sequence block and writes its parameters.
func (c *compiler) sequence(n *node, written map[tag.ID]*node, gated map[*node]bool) {
	b := n.b
	if len(b.Steps) == 0 {
		c.errs.Add(b.Pos, "%s needs its steps (add steps: [{name: idle, next: [{to: run, when: start}]}, {name: run, ...}])", n.what())
		return
	}
	index := map[string]int{}
	names := make([]string, 0, len(b.Steps))
	for i := range b.Steps {
		st := &b.Steps[i]
		pos := c.cfg.FieldPos(&st.Name, st.Pos)
		switch prev, dup := index[st.Name]; {
		case strings.TrimSpace(st.Name) == "":
			c.errs.Add(st.Pos, "%s: step %d has no name (add name: ...)", n.what(), i+1)
		case dup:
			c.errs.Add(pos, "%s: step name %q is already used at %s (step names are unique within a sequence)", n.what(), st.Name, c.cfg.FieldPos(&b.Steps[prev].Name, b.Steps[prev].Pos))
		default:
			index[st.Name] = i
			names = append(names, st.Name)
		}
	}
	tags := c.actionTags(n, written)
	enabled := c.enabledBlocks(n, gated)
	p := make([]float64, seqHead+rowLen*len(b.Steps))
	p[seqSteps], p[seqTags] = float64(len(b.Steps)), float64(len(tags)+len(enabled))
	p[seqStepTag], p[seqTimeTag], p[seqNameTag] = c.retainTag(n, seqOutStep), c.retainTag(n, seqOutTime), -1
	if id := n.outTag[seqOutName]; id >= 0 {
		if c.tab.Info[id].Type != tag.String {
			c.errs.Add(n.b.Pos, "output \"name\" of %s writes tag %q, a %s: it writes the step's name into a string tag (the index is output step)", n.what(), c.tab.Info[id].Name, c.tab.Info[id].Type)
		}
		p[seqNameTag] = float64(id)
	}
	// Transitions: the input each reads and the step it leads to.
	for i := range b.Steps {
		st := &b.Steps[i]
		row := p[seqHead+rowLen*i:]
		row[rowMin], row[rowTimeout] = c.stepTime(n, st, "min_time", st.MinTime, 0), c.stepTime(n, st, "timeout", st.Timeout, math.Inf(1))
		row[rowNext], row[rowCount], row[rowHash] = float64(len(p)), float64(len(st.Next)), stepHash(st.Name)
		for k := range st.Next {
			tr := &st.Next[k]
			to, ok := index[tr.To]
			if !ok {
				c.errs.Add(c.cfg.FieldPos(&tr.To, tr.Pos), "%s: step %q has a transition to unknown step %q%s (steps: %s)",
					n.what(), st.Name, tr.To, configs.DidYouMean(tr.To, names), strings.Join(names, ", "))
			}
			port := st.Name + ".next[" + strconv.Itoa(k) + "].when"
			if strings.TrimSpace(tr.When.Raw) == "" {
				c.errs.Add(tr.Pos, "%s: the transition of step %q to %q has no condition (add when: a bool tag, block.port or expression)", n.what(), st.Name, tr.To)
			}
			when := tr.When
			if when.Pos == (configs.Pos{}) {
				when.Pos = tr.Pos
			}
			if when.Raw != "" {
				n.ins = append(n.ins, c.resolve(n, port, boolean, when))
			} else {
				n.ins = append(n.ins, source{name: port, pos: tr.Pos}) // reported above
			}
			p = append(p, float64(len(n.ins)-1), float64(to))
		}
	}
	// Actions: every tag's value in every step.
	for i := range b.Steps {
		st := &b.Steps[i]
		p[seqHead+rowLen*i+rowSet] = float64(len(p))
		for j, id := range tags {
			v, ok := st.Set[c.tab.Info[id].Name]
			switch {
			case ok:
				p = append(p, c.actionValue(n, st, id, v))
			case i > 0: // the initial step's value
				p = append(p, p[int(p[seqHead+rowSet])+j])
			default:
				p = append(p, 0)
			}
		}
		for _, g := range enabled {
			p = append(p, b2f(slices.Contains(st.Enable, g.b.Name)))
		}
	}
	c.reachable(n, index)
	n.params = p
	n.outTag = append(n.outTag, tags...)
	for j, g := range enabled {
		g.gate, g.gatePort = n, seqOuts+len(tags)+j
		n.outTag = append(n.outTag, -1) // a register only
	}
	for range b.Steps {
		n.outTag = append(n.outTag, -1) // the step is active: its conditions are evaluated
	}
}

// enabledBlocks are the blocks the steps of n enable (enable:), in the
// order first named; each must be another block of the task that no other
// sequence enables.
func (c *compiler) enabledBlocks(n *node, gated map[*node]bool) []*node {
	var out []*node
	for i := range n.b.Steps {
		st := &n.b.Steps[i]
		for k, name := range st.Enable {
			pos := c.cfg.FieldPos(&st.Enable[k], c.cfg.FieldPos(&st.Enable, st.Pos)) // the list, when its items have no position
			g := c.byName[name]
			switch {
			case g == nil || g.task != n.task:
				var names []string
				for _, o := range c.nodes[n.task] {
					names = append(names, o.b.Name)
				}
				c.errs.Add(pos, "%s: step %q enables %q, which is not a block of task %q%s", n.what(), st.Name, name, c.cfg.Tasks[n.task].Name, configs.DidYouMean(name, names))
			case slices.Contains(out, g):
			case g == n || g.typ == nil || g.typ.op == opSequence || g.typ.op == opDelayOut:
				c.errs.Add(pos, "%s: step %q enables %s; a step enables function blocks, not a sequence or a delay", n.what(), st.Name, g.what())
			case gated[g]:
				c.errs.Add(pos, "%s: step %q enables %s, which another sequence enables (a block has one sequence)", n.what(), st.Name, g.what())
			default:
				gated[g] = true
				out = append(out, g)
			}
		}
	}
	return out
}

// gateDeps makes a block enabled by a sequence run after it.
func (n *node) gateDeps(edge func(*source)) {
	if n.gate != nil {
		edge(&source{kind: srcBlock, from: n.gate, port: n.gatePort})
	}
}

// gateLast gates the last instruction written, the block's own, by its
// sequence's enable register.
func (n *node) gateLast(tp *TaskProgram) {
	if n.gate != nil && len(tp.code) > 0 {
		tp.code[len(tp.code)-1].gate = n.gate.outReg + int32(n.gatePort)
	}
	if n.typ != nil && n.typ.op == opSequence {
		n.gateConditions(tp)
		names := make([]string, len(n.b.Steps))
		for i := range n.b.Steps {
			names[i] = n.b.Steps[i].Name
		}
		tp.params[tp.code[len(tp.code)-1].par+seqNames] = float64(len(tp.steps))
		tp.steps = append(tp.steps, names)
	}
}

// writesText reports whether output port of the type writes a string tag:
// a sequence's name.
func (t *blockType) writesText(port int) bool { return t.op == opSequence && port == seqOutName }

// gateConditions gates the expression of each transition condition by the
// register the sequence sets while the step it leaves is active: only the
// active step's conditions are evaluated, before the sequence reads them.
// A step's conditions run from the cycle after it became active, the
// first cycle the sequence tries its transitions.
func (n *node) gateConditions(tp *TaskProgram) {
	p := n.params
	nsteps := int(p[seqSteps])
	first := n.outReg + seqOuts + int32(p[seqTags]) // step 0's register
	for k := range nsteps {
		row := p[seqHead+rowLen*k:]
		for t := int(row[rowNext]); t < int(row[rowNext])+2*int(row[rowCount]); t += 2 {
			s := &n.ins[int(p[t])]
			if s.kind != srcExpr || s.ex.reg == 0 {
				continue
			}
			for i := len(tp.code) - 1; i >= 0; i-- {
				if in := &tp.code[i]; in.op == opExpr && in.out == s.ex.reg {
					in.gate = first + int32(k)
					break
				}
			}
		}
	}
}

// actionTags are the tags the steps of n set, in the order first written
// (each step's in name order); each is checked as a block output is.
func (c *compiler) actionTags(n *node, written map[tag.ID]*node) []tag.ID {
	var tags []tag.ID
	for i := range n.b.Steps {
		st := &n.b.Steps[i]
		for _, name := range sortedKeys(st.Set) {
			pos, _ := c.cfg.EntryPos(st.Set, name, st.Pos)
			id, ok := c.tab.Lookup(name)
			if !ok {
				c.errs.Add(pos, "%s: step %q sets unknown tag %q (declare it under tags:)", n.what(), st.Name, name)
				continue
			}
			if slices.Contains(tags, id) {
				continue
			}
			info := &c.tab.Info[id]
			w, byBlock := c.writers[id]
			other, bySeq := written[id]
			switch {
			case info.Type == tag.String:
				c.errs.Add(pos, "%s: step %q sets string tag %q (a step sets number and bool tags)", n.what(), st.Name, name)
			case info.Device != "" && !info.Access.Writable():
				c.errs.Add(pos, "%s: step %q sets tag %q, which is read from device %q (set an internal tag or a writable device tag)", n.what(), st.Name, name, info.Device)
			case byBlock:
				c.errs.Add(pos, "%s: step %q sets tag %q, which %s.%s already writes (a tag has one writer)", n.what(), st.Name, name, w.n.b.Name, w.n.typ.Outputs[w.port].Name)
			case bySeq && other != n:
				c.errs.Add(pos, "%s: step %q sets tag %q, which sequence %q already sets (a tag has one writer)", n.what(), st.Name, name, other.b.Name)
			default:
				written[id] = n
				tags = append(tags, id)
			}
		}
	}
	return tags
}

// actionValue reads the value step st sets tag id to.
func (c *compiler) actionValue(n *node, st *configs.Step, id tag.ID, v configs.Value) float64 {
	info := &c.tab.Info[id]
	pos := c.valuePos(st.Set, info.Name, v.Pos, st.Pos)
	if info.Type == tag.Bool {
		on, err := v.Bool()
		if err != nil {
			c.errs.Add(pos, "%s: step %q sets bool tag %q: write true or false, not %q", n.what(), st.Name, info.Name, v.Raw)
		}
		return b2f(on)
	}
	f, err := v.Float()
	if err != nil || !finite(f) {
		c.errs.Add(pos, "%s: step %q sets tag %q: write a number, not %q", n.what(), st.Name, info.Name, v.Raw)
	}
	return f
}

// stepTime reads a step's min_time or timeout in nanoseconds; def when unset.
func (c *compiler) stepTime(n *node, st *configs.Step, key string, v configs.Value, def float64) float64 {
	if !v.Set {
		return def
	}
	d, err := configs.ParseDuration(strings.TrimSpace(v.Raw))
	switch {
	case err != nil:
		c.errs.Add(c.valuePos(nil, "", v.Pos, st.Pos), "%s: %s of step %q is a time: %v", n.what(), key, st.Name, err)
	case d < 0:
		c.errs.Add(c.valuePos(nil, "", v.Pos, st.Pos), "%s: %s of step %q must be 0 or more, not %s", n.what(), key, st.Name, v.Raw)
	case d == 0 && key == "timeout":
		return def
	default:
		return float64(d)
	}
	return def
}

// retainTag is the tag output port writes, as a parameter, when it is a
// retain tag (the position restored at start); -1 otherwise.
func (c *compiler) retainTag(n *node, port int) float64 {
	if id := n.outTag[port]; id >= 0 && c.tab.Info[id].Retain {
		return float64(id)
	}
	return -1
}

// reachable reports every step no chain of transitions leads to from the
// initial step.
func (c *compiler) reachable(n *node, index map[string]int) {
	steps := n.b.Steps
	seen := make([]bool, len(steps))
	queue := []int{0}
	seen[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, tr := range steps[i].Next {
			if to, ok := index[tr.To]; ok && !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	for i := range steps {
		if !seen[i] && index[steps[i].Name] == i {
			c.errs.Add(steps[i].Pos, "%s: step %q is never reached from the initial step %q (add a transition to it: next: [{to: %s, when: ...}], or remove it)",
				n.what(), steps[i].Name, steps[0].Name, steps[i].Name)
		}
	}
}

// sequence runs one cycle of a sequence block and returns its outputs'
// quality (good: a bad condition or command counts as false).
//
// Hot path: no allocation.
func (tp *TaskProgram) sequence(a []int32, out, p, s []float64, dtn float64) uint16 {
	r, q := tp.regs, tp.qual
	on := func(k int) bool { return r[a[k]] != 0 && q[a[k]] < badRank }
	nsteps := int(p[seqSteps])
	row := func(k int) []float64 { return p[seqHead+rowLen*k:] }
	if s[seqStInit] == 0 {
		s[seqStInit] = 1
		tp.restoreSequence(p, s, nsteps)
		s[seqStHash] = row(int(s[seqStStep]))[rowHash]
	}
	// A hand-over from a program whose steps differ: find the step by name.
	// State from elsewhere may hold anything: a step that is no index, a
	// time that is no number.
	if !(s[seqStTime] >= 0 && s[seqStTime] <= math.MaxInt64) {
		s[seqStTime] = 0
	}
	k := -1
	if st := s[seqStStep]; st >= 0 && st < float64(nsteps) {
		k = int(st)
	}
	if k < 0 || row(k)[rowHash] != s[seqStHash] {
		k = 0
		for i := range nsteps {
			if row(i)[rowHash] == s[seqStHash] {
				k = i
				break
			}
		}
		if row(k)[rowHash] != s[seqStHash] {
			s[seqStTime], s[seqStAlarm] = 0, 0
		}
		s[seqStStep], s[seqStHash] = float64(k), row(k)[rowHash]
	}
	hold, resume, abort := on(seqInHold), on(seqInResume), on(seqInAbort)
	switch {
	case abort:
		if k != 0 || s[seqStAbort] == 0 {
			k = 0
			enterStep(s, 0, row(0)[rowHash])
		}
		s[seqStHeld] = 0
	case hold && s[seqStHold] == 0:
		s[seqStHeld] = 1
	case resume && s[seqStResume] == 0:
		s[seqStHeld] = 0
	}
	s[seqStHold], s[seqStResume], s[seqStAbort] = b2f(hold), b2f(resume), b2f(abort)
	if s[seqStHeld] == 0 && !abort {
		s[seqStTime] += dtn
		rw := row(k)
		if s[seqStTime] >= rw[rowTimeout] {
			s[seqStAlarm] = 1
		}
		if s[seqStTime] >= rw[rowMin] {
			first, count := int(rw[rowNext]), int(rw[rowCount])
			for t := first; t < first+2*count; t += 2 {
				if on(int(p[t])) {
					k = int(p[t+1])
					enterStep(s, k, row(k)[rowHash])
					break
				}
			}
		}
	}
	out[seqOutStep], out[seqOutTime] = float64(k), s[seqStTime]/1e9
	out[seqOutAlarm], out[seqOutHeld], out[seqOutName] = s[seqStAlarm], s[seqStHeld], float64(k)
	if id := int(p[seqNameTag]); id >= 0 {
		if name := tp.steps[int(p[seqNames])][k]; tp.tab.Text[id] != name {
			tp.tab.Text[id] = name
		}
	}
	ncols := int(p[seqTags])
	copy(out[seqOuts:], p[int(row(k)[rowSet]):][:ncols])
	active := out[seqOuts+ncols:][:nsteps]
	clear(active)
	active[k] = 1
	return 0
}

// enterStep makes step k active, from time 0 with its alarm off.
func enterStep(s []float64, k int, hash float64) {
	s[seqStStep], s[seqStTime], s[seqStAlarm], s[seqStHash] = float64(k), 0, 0, hash
}

// restoreSequence takes the position from the retain tags the step and
// time outputs write (restored into the tag table before the first cycle),
// when the step tag is one and holds a step.
func (tp *TaskProgram) restoreSequence(p, s []float64, nsteps int) {
	id := int(p[seqStepTag])
	if id < 0 || id >= len(tp.tab.Samples) {
		return
	}
	v := tp.tab.Samples[id].Value
	if v != math.Trunc(v) || v < 0 || v >= float64(nsteps) {
		return
	}
	s[seqStStep] = v
	if t := int(p[seqTimeTag]); t >= 0 && t < len(tp.tab.Samples) {
		if et := tp.tab.Samples[t].Value; finite(et) && et > 0 {
			s[seqStTime] = et * 1e9
		}
	}
}
