// Package blocks is the function-block library of the executive and the
// compiler that turns a control config's tasks into flat programs.
//
// The library's catalogue (Catalogue, Lookup) is the one description of the
// block types: each type's inputs and outputs (number or bool, required),
// its parameters (kind, default, limits, enum words), and which ports share
// a unit. The config schema (configs.Schema), the README's block table and
// the checks are made from it. Validate checks a config's blocks against
// it (types, ports, port types, units, parameters, loops) and is the
// configs.Check that configs.Load runs beside configs' own rules, which
// check names and what the blocks read and write; every problem is
// reported at once as configs.Errors with the position of the offending
// block, input or parameter. ParamValue reads a parameter as the compiler
// does, for a live SetParam (ParamChanges finds the parameters a new config
// changes).
//
// Compile checks the blocks as Validate does, and their wiring as configs
// does (a config built in code was never loaded), then turns each task into
// a TaskProgram: a register file of float64 values with a quality per
// register, and a list of instructions (an opcode and operand register
// indices) sorted in dependency order. A loop in the block graph is a config
// error unless it passes through a delay block.
//
// Once per cycle the executive calls TaskProgram.Run: input tags are copied
// from the tag table into registers, the instructions run, and output tags
// are copied back with the worst quality of the inputs that produced them.
// Run allocates nothing and takes no locks.
//
// # Port types
//
// Every port is a number or a bool. A bool is carried as 0 or 1. A bool
// (a bool output, a bool tag, or a literal true/false/0/1) may feed a number
// input and counts as 0 or 1. A number may not feed a bool input: wire it
// through compare or hysteresis instead. A number output may not write a bool
// tag, and no port reads or writes a string tag but a sequence's name, which
// writes the active step's name. delay and select carry
// whatever their data inputs carry: a delay of a bool is a bool, so a
// motor starter's seal-in (start OR delayed run, AND permissive) compiles.
//
// # Quality
//
// An output is as good as its worst input (bad is worse than stale, stale
// worse than uncertain, uncertain worse than good); the reason of the worst
// input travels with it. select takes the quality of sel and of the input it
// selects only. A block with memory (pid, lag, ramp, hysteresis, alarm,
// timers, counter) holds its state and its outputs
// while any input is bad, so a lost device neither winds up an integrator
// nor counts a spurious edge; its outputs turn bad until the input recovers.
// A pid also holds when pv, sp or man_out is not a finite number.
//
// # Blocks
//
// Durations are written with a unit (ti: 10s, pt: 250ms) and are seconds in
// SetParam and in the et outputs. Rates are units per second.
//
//	pid        in pv, sp, track (bool), man_out, ff, ext_reset; out out; kp (1), ti (0 = no
//	           integral), td (0), td_filter (10: the ratio N, filter time td/N; or a
//	           duration: the filter time itself), out_min (0), out_max (100),
//	           rate_max (0 = off), direct (false), bias (0).
//	           error = sp - pv: out rises when pv is below sp; direct: true flips it.
//	           Ideal (ISA) form; derivative on the measurement through a first-order
//	           filter of time constant td/td_filter; integral in output units with
//	           clamping anti-windup against the output and rate limits; while track
//	           is true the output follows man_out (limited) and the integral is
//	           back-calculated, so the return to automatic is bumpless (with ti = 0
//	           the integral term acts as a manual reset). Changing kp online
//	           re-balances the integral so the output does not step. ff
//	           (feed-forward) is added to the output as bias is. ext_reset, when
//	           wired, is external reset feedback: the integral is ext_reset (less
//	           bias and ff) through a lag of ti instead of the integrated error.
//	lag        in in; out out; tau: out = in after a first-order lag (exact for a
//	           step at any cycle time); tau 0 passes through.
//	ramp       in in; out out; rate: out follows in at most rate units/s.
//	limit      in in, mn, mx; out out; min (-inf), max (+inf); mn and mx, when
//	           wired, replace min and max (IEC LIMIT); mn > mx: mn, bad.
//	scale      in in; out out; gain (1), offset (0): out = in*gain + offset.
//	deadband   in in; out out; width: out = 0 while |in| <= width, else in moved
//	           toward 0 by width (continuous dead zone).
//	hysteresis in in; out out (bool); on, off (off < on): turns on when in >= on,
//	           off when in <= off.
//	alarm      in in, ack (bool); out hi, hihi, lo, lolo, active, unacked (bool);
//	           params hi, hihi, lo, lolo (each optional), deadband (0), delay (0),
//	           off_delay (0). A limit alarm sets when in has been at or beyond its
//	           limit for delay, and clears when in has been back inside the limit
//	           by more than deadband for off_delay. A limit that sets turns
//	           unacked on until a rising edge of ack (SCADA writes ack through a
//	           writable tag, so an acknowledge is checked and audited).
//	ton, tof, tp  in in (bool); out q (bool), et (seconds); pt. IEC 61131-3
//	           semantics; tp is not re-triggered while its pulse runs.
//	counter    in up, down, reset (bools); out cv, q (cv >= pv), qd (cv <= 0); pv.
//	           up and down count on rising edges; reset holds cv at 0 while true.
//	and, or, xor  in in1..inN (bools); out out (bool). xor is odd parity.
//	not        in in (bool); out out (bool).
//	compare    in a, b; out out (bool); op gt|ge|lt|le|eq|ne, hysteresis (0). With
//	           hysteresis h, gt/ge stay true until a < b-h, lt/le until a > b+h,
//	           and eq is true while |a-b| <= h (ne is its negation).
//	select     in sel (bool), in1 (sel false), in2 (sel true); out out.
//	min, max, average  in in1..inN; out out.
//	delay      in in; out out; initial (0): out is in of the previous cycle. Its
//	           output may feed back into the graph; it is how a loop is broken.
//	expr       in in1..inN (optional); out out; expr: the expression out is.
//
// The IEC 61131-3 standard library follows under IEC's names (iec.go):
// add, sub, mul, div, mod, expt, abs, sqrt, ln, log, exp, sin, cos, tan,
// asin, acos, atan, gt, ge, eq, ne, le, lt, the type conversions trunc,
// real_to_int, int_to_real, bool_to_int, bool_to_real, int_to_bool,
// real_to_bool (each the function of the same name of an expression,
// compiled by package expr), sel, mux, move, and the function blocks sr,
// rs, r_trig, f_trig, ctu, ctd, ctud (pv a parameter). A failed operation
// (division by zero, a square root of a negative number, an overflow, ...)
// gives a defined value and a bad output, never a panic.
//
// The process-control blocks follow (process.go): integrator (a totalizer
// with reset, hold and limits; its total is state, handed over, and read
// back at start from the retain tag its out writes), lead_lag, moving_average (64 parts of the window in state),
// rate_of_change, characterizer (a piecewise-linear table of up to 8
// points, x checked strictly increasing at load), split_range, and
// scheduler: weekly windows in the plant's local time, the zone
// metadata.timezone, the time the cycle's Unix time (SetEpoch + now).
//
// # Expressions
//
// An expr block's expr:, and any input written as an expression (it holds
// a character no name or number has: configs.Ref.IsExpr), is compiled by
// package expr once every block is wired: each name is a tag, a block.port
// or, in an expr block, an input in1..inN, typed float, int or bool and
// carrying the unit of its tag. Errors are reported at the line and column
// of the offending character inside the YAML string (the file is read for
// the quoting of the scalar). An expression runs as one instruction whose
// arguments are the registers its names read, so its quality is theirs and
// the dependency order includes them; an input's expression runs just
// before the block that reads it. Changing an expression is structural
// (ParamChanges: ErrStructural).
//
// pid pv and sp, compare a and b, select in1 and in2, and the inputs of min,
// max, average, add, sub, the comparisons, sel and mux must have the same engineering unit when both units are
// known; a unit passes through lag, ramp, limit, deadband, delay, select,
// min, max and average, and a tag such a block writes must be in it.
//
// # Sequences
//
// A sequence block (sequence.go) runs steps: one is active at a time, its
// set: gives tags their values (a tag a step does not list takes the
// initial step's), and the first of its transitions whose bool condition
// (a tag, block.port or expression, compiled as an input of the block)
// holds after the step's min_time makes the target step active. Its state
// is the active step, the time in it, hold and the timeout alarm; it runs
// in one instruction that writes its outputs and every tag its steps set,
// and a register per block its steps enable: such a block's instruction is
// gated by it (instr.gate) and runs after the sequence. The expressions
// of a step's conditions are gated likewise, by a register on while the
// step is active, so only the active step's conditions are evaluated.
// The steps are checked at load (unknown and unreachable steps, duplicate
// names, non-bool conditions, tags with a second writer), each at its
// position. A hand-over (ImportState) carries the step by a hash of its
// name, so steps added or removed around it do not move it; at start the
// step and time are taken from their output tags when those are retained.
//
// Nothing here needs privileges or hardware.
package blocks
