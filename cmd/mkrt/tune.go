package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/supervisor/control"
)

// tuneOptions are mkrt tune's flags.
type tuneOptions struct {
	config     string
	amplitude  float64
	maxTime    time.Duration
	hysteresis float64
	rule       string
	apply      bool
	poll       time.Duration
	json       bool
}

// newTuneCmd is `mkrt tune TASK.BLOCK`.
func newTuneCmd() *cobra.Command {
	var f socketFlags
	var o tuneOptions
	cmd := &cobra.Command{
		Use:   "tune TASK.BLOCK --config CONFIG --amplitude D --max-time T",
		Short: "find a running pid loop's ultimate gain and period by a relay experiment, and suggest gains",
		Long: "Drive a pid block of the running partition through a relay experiment\n" +
			"(Åström–Hägglund): its output switches between u0+D and u0-D on the sign of\n" +
			"the error until the loop's oscillation repeats, then goes back to u0. Prints\n" +
			"the ultimate gain Ku and period Pu and kp/ti/td by each rule (zn, ah,\n" +
			"tyreus-luyben); --apply applies the chosen rule's gains live through the same\n" +
			"audited path as mkrt apply. CONFIG is the config the partition runs; the\n" +
			"block's tune_state, tune_ku and tune_pu outputs must be wired to tags. The\n" +
			"experiment stops, with the output back at u0, after --max-time, on Ctrl-C,\n" +
			"or when an alarm of the task turns on.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.json = f.json
			return runTune(ctx, c, cmd.OutOrStdout(), args[0], o)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.config, "config", "", "the config file the partition runs (required)")
	fl.Float64Var(&o.amplitude, "amplitude", 0, "relay amplitude D in output units: the output moves to u0 ± D (required)")
	fl.DurationVar(&o.maxTime, "max-time", 10*time.Minute, "the longest the experiment may run before it is aborted")
	fl.Float64Var(&o.hysteresis, "hysteresis", 0, "error band in pv units the relay does not switch inside (set it above the pv noise)")
	fl.StringVar(&o.rule, "rule", "tyreus-luyben", "the rule --apply applies: "+strings.Join(blocks.TuneRules, ", "))
	fl.BoolVar(&o.apply, "apply", false, "apply the rule's kp, ti and td live when the experiment succeeds")
	fl.DurationVar(&o.poll, "poll", 200*time.Millisecond, "how often to read the tags while the experiment runs")
	return cmd
}

// tuneTarget is what mkrt tune needs to know about the block from the config.
type tuneTarget struct {
	file          string // absolute
	text          []byte
	task, block   string
	state, ku, pu string   // the tags the tune outputs write
	alarms        []string // the alarm tags of the task
}

// findTuneTarget checks the block and its wiring in the config.
func findTuneTarget(o tuneOptions, name string) (*tuneTarget, error) {
	task, block, ok := strings.Cut(name, ".")
	if !ok || task == "" || block == "" {
		return nil, fmt.Errorf("tune: %q: name the block as TASK.BLOCK, e.g. level.lic_101", name)
	}
	switch {
	case o.config == "":
		return nil, errors.New("tune: --config is required: the config file the partition runs")
	case !(o.amplitude > 0):
		return nil, fmt.Errorf("tune: --amplitude %v: give the relay amplitude in output units, above 0 (e.g. 5 for ±5%%)", o.amplitude)
	case o.maxTime <= 0:
		return nil, fmt.Errorf("tune: --max-time %v: give a time above 0 (e.g. 10m)", o.maxTime)
	case o.poll < 10*time.Millisecond:
		return nil, fmt.Errorf("tune: --poll %v: at least 10ms", o.poll)
	case o.hysteresis < 0:
		return nil, fmt.Errorf("tune: --hysteresis %v: must be 0 or above", o.hysteresis)
	case !slices.Contains(blocks.TuneRules, o.rule):
		return nil, fmt.Errorf("tune: --rule %q: one of %s", o.rule, strings.Join(blocks.TuneRules, ", "))
	}
	file, err := filepath.Abs(o.config)
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	cfg, err := configs.LoadBytes(file, text)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	t := &tuneTarget{file: file, text: text, task: task, block: block}
	k := slices.IndexFunc(cfg.Tasks, func(t configs.Task) bool { return t.Name == task })
	if k < 0 {
		return nil, fmt.Errorf("tune: %s has no task %q", o.config, task)
	}
	var pid *configs.Block
	for i := range cfg.Tasks[k].Blocks {
		b := &cfg.Tasks[k].Blocks[i]
		if b.Name == block {
			pid = b
		}
		if b.Type == "alarm" {
			for _, port := range []string{"active", "hi", "hihi", "lo", "lolo"} {
				if tg := b.Outputs[port]; tg != "" {
					t.alarms = append(t.alarms, tg)
				}
			}
		}
	}
	if pid == nil {
		return nil, fmt.Errorf("tune: task %q of %s has no block %q", task, o.config, block)
	}
	if pid.Type != "pid" {
		return nil, fmt.Errorf("tune: %s: block %q is a %s; only a pid block can be tuned", name, block, pid.Type)
	}
	t.state, t.ku, t.pu = pid.Outputs["tune_state"], pid.Outputs["tune_ku"], pid.Outputs["tune_pu"]
	if t.state == "" || t.ku == "" || t.pu == "" {
		return nil, fmt.Errorf("tune: %s: wire the block's outputs tune_state, tune_ku and tune_pu to tags in %s (outputs: {tune_state: %s_tune_state, ...}) and apply it first", name, o.config, block)
	}
	return t, nil
}

// withParams is the config text with the block's parameters set.
func (t *tuneTarget) withParams(set map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(t.text, &doc); err != nil || len(doc.Content) == 0 {
		return nil, fmt.Errorf("tune: %s: %v", t.file, err)
	}
	params := findParams(doc.Content[0], t.task, t.block)
	if params == nil {
		return nil, fmt.Errorf("tune: %s: no block %q under task %q written out (blocks of a block type cannot be tuned)", t.file, t.block, t.task)
	}
	for _, key := range slices.Sorted(maps.Keys(set)) {
		v := &yaml.Node{Kind: yaml.ScalarNode, Value: set[key]}
		if i := mapIndex(params, key); i >= 0 {
			params.Content[i+1] = v
		} else {
			params.Content = append(params.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
		}
	}
	return yaml.Marshal(&doc)
}

// mapIndex is the index of key's key node in a mapping node, or -1.
func mapIndex(m *yaml.Node, key string) int {
	if m == nil || m.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if i := mapIndex(m, key); i >= 0 {
		return m.Content[i+1]
	}
	return nil
}

// findParams finds (adding it when missing) the params mapping of the
// block in the task.
func findParams(root *yaml.Node, task, block string) *yaml.Node {
	bn := named(mapValue(named(mapValue(root, "tasks"), task), "blocks"), block)
	if bn == nil {
		return nil
	}
	p := mapValue(bn, "params")
	if p == nil || p.Kind != yaml.MappingNode {
		p = &yaml.Node{Kind: yaml.MappingNode}
		if i := mapIndex(bn, "params"); i >= 0 {
			bn.Content[i+1] = p
		} else {
			bn.Content = append(bn.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "params"}, p)
		}
	}
	return p
}

// named is the mapping in the sequence seq whose name is name, or nil.
func named(seq *yaml.Node, name string) *yaml.Node {
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil
	}
	for _, m := range seq.Content {
		if n := mapValue(m, "name"); n != nil && n.Value == name {
			return m
		}
	}
	return nil
}

// tuneClient is the part of the control client mkrt tune uses.
type tuneClient interface {
	Tags(ctx context.Context) ([]control.TagValue, error)
	Watch(ctx context.Context, every time.Duration, fn func([]control.TagValue) error) error
	Apply(ctx context.Context, file string, cfg []byte) (control.ApplyResult, error)
}

// errTuneDone ends the watch when the experiment has a result.
var errTuneDone = errors.New("tune: done")

func tuneNum(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func tuneSeconds(v float64) string { return tuneNum(v) + "s" }

// runTune runs the experiment on the partition c talks to.
func runTune(ctx context.Context, c tuneClient, out io.Writer, name string, o tuneOptions) error {
	t, err := findTuneTarget(o, name)
	if err != nil {
		return err
	}
	tags, err := c.Tags(ctx)
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	if on := activeAlarms(tags, t.alarms); len(on) > 0 {
		return fmt.Errorf("tune: %s: alarm %s is on; clear it before tuning", name, strings.Join(on, ", "))
	}
	bounds := map[string]string{"tune_max_time": o.maxTime.String(), "tune_hysteresis": tuneNum(o.hysteresis)}
	start, err := t.withParams(map[string]string{"tune": tuneNum(o.amplitude), "tune_max_time": bounds["tune_max_time"], "tune_hysteresis": bounds["tune_hysteresis"]})
	if err != nil {
		return err
	}
	// Whatever happens from here, tune goes back to 0 (the output back to u0).
	stopped := false
	stopTune := func(extra map[string]string) (control.ApplyResult, error) {
		stopped = true
		set := map[string]string{"tune": "0"}
		maps.Copy(set, bounds) // kept: a parameter once applied cannot be removed live
		for k, v := range extra {
			set[k] = v
		}
		text, err := t.withParams(set)
		if err != nil {
			return control.ApplyResult{}, err
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return c.Apply(sctx, t.file, text)
	}
	// The block starts an experiment when tune changes from 0: make sure it is 0.
	if _, err := stopTune(nil); err != nil {
		return fmt.Errorf("tune: %s: %w", name, err)
	}
	stopped = false
	if _, err := c.Apply(ctx, t.file, start); err != nil {
		return fmt.Errorf("tune: %s: starting the experiment: %w", name, err)
	}
	defer func() {
		if !stopped {
			if _, err := stopTune(nil); err != nil {
				fmt.Fprintf(out, "%s: could not set tune back to 0: %v\n", name, err)
			}
		}
	}()
	if !o.json {
		fmt.Fprintf(out, "%s: relay experiment, output u0 ± %s, at most %s (Ctrl-C aborts)\n", name, tuneNum(o.amplitude), o.maxTime)
	}
	var ku, pu float64
	var why error
	wctx, cancel := context.WithTimeout(ctx, o.maxTime+time.Minute)
	defer cancel()
	running := false
	werr := c.Watch(wctx, o.poll, func(tags []control.TagValue) error {
		if on := activeAlarms(tags, t.alarms); len(on) > 0 {
			why = fmt.Errorf("tune: %s: aborted: alarm %s turned on", name, strings.Join(on, ", "))
			return why
		}
		v := map[string]float64{}
		for _, tg := range tags {
			v[tg.Name] = tg.Value
		}
		switch v[t.state] {
		case blocks.TuneRunning:
			running = true
		case blocks.TuneDone:
			ku, pu = v[t.ku], v[t.pu]
			return errTuneDone
		case blocks.TuneAborted:
			why = fmt.Errorf("tune: %s: the block aborted the experiment (it ran past --max-time %s, or the loop was tracking)", name, o.maxTime)
			return why
		case blocks.TuneIdle:
			if running {
				why = fmt.Errorf("tune: %s: the experiment ended without a result (a restart or hand-over of the partition)", name)
				return why
			}
		}
		return nil
	})
	switch {
	case errors.Is(werr, errTuneDone):
	case why != nil:
		return why
	case ctx.Err() != nil:
		return fmt.Errorf("tune: %s: aborted; the output is back where it was", name)
	case wctx.Err() != nil:
		return fmt.Errorf("tune: %s: no result in %s: is the partition running the block? (tune_state stayed %v)", name, o.maxTime+time.Minute, "idle")
	default:
		return fmt.Errorf("tune: %s: %w", name, werr)
	}
	res := tuneResult{Block: name, Ku: ku, Pu: pu, Rule: o.rule}
	var gains map[string]string
	for _, rule := range blocks.TuneRules {
		kp, ti, td, err := blocks.TuneGains(rule, ku, pu)
		if err != nil {
			return fmt.Errorf("tune: %s: %w", name, err)
		}
		res.Gains = append(res.Gains, tuneGains{Rule: rule, Kp: kp, Ti: ti, Td: td})
		if rule == o.rule {
			gains = map[string]string{"kp": tuneNum(kp), "ti": tuneSeconds(ti), "td": tuneSeconds(td)}
		}
	}
	if !o.apply {
		gains = nil
	}
	applied, err := stopTune(gains)
	if err != nil {
		return fmt.Errorf("tune: %s: setting tune back to 0 (and the gains, with --apply): %w", name, err)
	}
	res.Applied, res.Changes = o.apply, applied.Changes
	if o.json {
		return printJSON(out, res)
	}
	fmt.Fprintf(out, "%s: ultimate gain Ku = %s, ultimate period Pu = %s\n", name, tuneNum(ku), tuneSeconds(pu))
	fmt.Fprintf(out, "  %-14s %10s %10s %10s\n", "rule", "kp", "ti", "td")
	for _, g := range res.Gains {
		fmt.Fprintf(out, "  %-14s %10s %10s %10s\n", g.Rule, tuneNum(g.Kp), tuneSeconds(g.Ti), tuneSeconds(g.Td))
	}
	if !o.apply {
		fmt.Fprintf(out, "not applied (--apply --rule %s applies that rule's gains live)\n", o.rule)
		return nil
	}
	fmt.Fprintf(out, "applied the %s gains live; put them in %s to keep them:\n", o.rule, o.config)
	for _, ch := range res.Changes {
		fmt.Fprintf(out, "  %s\n", ch)
	}
	return nil
}

// tuneResult is what mkrt tune --json prints.
type tuneResult struct {
	Block   string      `json:"block"`
	Ku      float64     `json:"ku"`
	Pu      float64     `json:"pu_seconds"`
	Gains   []tuneGains `json:"gains"`
	Rule    string      `json:"rule"`
	Applied bool        `json:"applied"`
	Changes []string    `json:"changes,omitempty"`
}

// tuneGains are one rule's gains; times in seconds.
type tuneGains struct {
	Rule string  `json:"rule"`
	Kp   float64 `json:"kp"`
	Ti   float64 `json:"ti_seconds"`
	Td   float64 `json:"td_seconds"`
}

// activeAlarms are the alarm tags that are on.
func activeAlarms(tags []control.TagValue, alarms []string) []string {
	var on []string
	for _, tg := range tags {
		if tg.Value != 0 && slices.Contains(alarms, tg.Name) {
			on = append(on, tg.Name)
		}
	}
	return on
}
