package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mkrt/mkrt/bridge"
	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// controller serves the control socket: status, tags, writes, parameter
// changes and hand-overs of the running deployment. Every write and apply,
// accepted or refused, is recorded in the bridge's audit log.
type controller struct {
	d *deployment
}

func (c *controller) Status() supervisor.Status {
	g := c.d.current()
	st := withRT(g.ch, g.sup.Status())
	st.HandOver = c.d.handOverStatus(g)
	return st
}

func (c *controller) Tags() []control.TagValue {
	ch := c.d.current().ch
	img, err := ch.Image()
	infos := ch.Tags()
	out := make([]control.TagValue, len(infos))
	for i, in := range infos {
		tv := control.TagValue{Name: in.Name, Type: string(in.Type), Unit: in.Unit, Writable: in.Writable, Device: in.Device, Quality: tag.Bad.String()}
		if err == nil && i < len(img.Samples) {
			s := img.Samples[i]
			tv.Value, tv.Text, tv.Quality = s.Value, img.Text[i], s.Quality.String()
			if s.Reason != tag.NoReason {
				tv.Reason = s.Reason.String()
			}
			if s.Time != 0 {
				tv.Time = time.Unix(0, s.Time)
			}
		}
		out[i] = tv
	}
	return out
}

// Set writes a tag through the bridge's audited plant, as SCADA's writes
// go: checked, recorded with the control-socket peer (the principal the
// socket put in ctx), then applied by the executive. An attempt refused
// before a write (no such tag, a value that does not parse) is recorded
// too.
func (c *controller) Set(ctx context.Context, name, value string) (control.Result, error) {
	res := control.Result{Tag: name, Value: value}
	who, ok := plant.PrincipalFrom(ctx)
	if !ok {
		who = plant.Principal{Protocol: "cli"}
		ctx = plant.WithPrincipal(ctx, who)
	}
	refuse := func(err error) (control.Result, error) {
		c.Refuse(ctx, plant.Refusal{Principal: who, Tag: name, Value: value, Reason: err.Error()})
		return res, err
	}
	br := c.bridge()
	if br == nil {
		return refuse(fmt.Errorf("%w: the bridge is restarting; try again", control.ErrUnavailable))
	}
	p := br.Plant()
	infos := p.Tags()
	id := tag.ID(-1)
	for i, in := range infos {
		if in.Name == name {
			id = tag.ID(i)
		}
	}
	if id < 0 {
		return refuse(fmt.Errorf("%w: no tag %q (mkrt tags lists them)", control.ErrNotFound, name))
	}
	w := wire.Command{Kind: wire.WriteTag, Tag: id, Origin: wire.NewOrigin("cli:" + who.User)}
	switch infos[id].Type {
	case tag.String:
		w.Value = wire.Text(value)
	case tag.Bool:
		v, err := (configs.Value{Raw: value}).Bool()
		if err != nil {
			return refuse(fmt.Errorf("%w: %s is a bool: %v", control.ErrInvalid, name, err))
		}
		if v {
			w.Value = wire.Number(1)
		}
	default:
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return refuse(fmt.Errorf("%w: %s is a number: %q is not one", control.ErrInvalid, name, value))
		}
		w.Value = wire.Number(v)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := p.Write(ctx, w)
	if err != nil {
		switch {
		case errors.Is(err, wire.ErrReadOnly):
			return res, fmt.Errorf("%w: %s is not writable", control.ErrForbidden, name)
		case errors.Is(err, wire.ErrUnknownTag):
			return res, fmt.Errorf("%w: %s", control.ErrNotFound, name)
		case errors.Is(err, wire.ErrOutOfRange), errors.Is(err, wire.ErrWrongType):
			return res, fmt.Errorf("%w: %s = %s: %w", control.ErrInvalid, name, value, err)
		default:
			return res, fmt.Errorf("%w: %v", control.ErrUnavailable, err)
		}
	}
	res.Applied, res.Status, res.Cycle, res.Old = true, r.Status, r.Cycle, r.Old
	res.Message = fmt.Sprintf("applied at cycle %d (was %s)", r.Cycle, strconv.FormatFloat(r.Old, 'g', -1, 64))
	return res, nil
}

// bridge is the deployment's bridge, nil while it (re)starts.
func (c *controller) bridge() *bridge.Bridge {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return c.d.br
}

// Refuse implements plant.Refuser: the control socket's refusals go to
// the audit log of the bridge that serves now.
func (c *controller) Refuse(ctx context.Context, r plant.Refusal) {
	if br := c.bridge(); br != nil {
		br.Audit().Refuse(ctx, r)
		return
	}
	c.d.log.Warn("audit: refusal not recorded: the bridge is restarting", "who", r.Principal.User, "tag", r.Tag, "reason", r.Reason)
}

// recordApply records an apply (protocol "apply") or the hand-over it
// became, with who asked, the generation that runs after it, what
// changed and the result.
func (c *controller) recordApply(ctx context.Context, protocol string, out control.ApplyResult, err error) {
	ch := audit.Change{Protocol: protocol, Generation: c.d.current().n, Changes: out.Changes, Err: err, Refused: errors.Is(err, control.ErrInvalid)}
	if err == nil && !out.Applied {
		ch.Err = errors.New(out.Message)
	}
	if len(ch.Changes) == 0 && out.Message != "" {
		ch.Changes = []string{out.Message}
	}
	if br := c.bridge(); br != nil {
		br.Audit().RecordChange(ctx, ch)
		return
	}
	c.d.log.Warn("audit: apply not recorded: the bridge is restarting", "protocol", protocol, "err", err)
}

// Apply applies a changed config. Function-block parameters go through the
// command ring at a cycle boundary; a structural change is handed over to
// a new generation of the partition (see handOver) when it can be, and
// refused with the reason otherwise, the running plant left as it is.
func (c *controller) Apply(ctx context.Context, file string, text []byte) (out control.ApplyResult, err error) {
	protocol := "apply"
	defer func() { c.recordApply(ctx, protocol, out, err) }()
	if file == "" {
		file = "applied config"
	}
	nc, err := configs.LoadBytes(file, text)
	if err != nil {
		return out, fmt.Errorf("%w: the config does not validate; nothing was changed:\n%v", control.ErrInvalid, err)
	}
	tab, err := nc.TagTable()
	if err == nil {
		_, err = blocks.Compile(nc, tab)
	}
	if err != nil {
		return out, fmt.Errorf("%w: the config does not compile; nothing was changed:\n%v", control.ErrInvalid, err)
	}
	c.d.applyMu.Lock()
	defer c.d.applyMu.Unlock()
	if c.d.ctx.Err() != nil {
		return out, fmt.Errorf("%w: the deployment is stopping", control.ErrUnavailable)
	}
	g := c.d.current()
	changes, err := blocks.ParamChanges(g.applied, nc)
	if errors.Is(err, blocks.ErrStructural) {
		protocol = "hand-over"
		return c.d.handOver(ctx, nc)
	}
	if err != nil {
		return out, fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	if len(changes) == 0 {
		out.Applied, out.Message = true, "no parameter changed"
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, p := range changes {
		name := p.Name()
		res, err := g.ch.Reader().Do(ctx, wire.Command{Kind: wire.SetParam, Tag: -1, Value: wire.Number(p.Value), Origin: wire.NewOrigin("cli:mkrt apply"), Param: []byte(name)})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			out.Message = fmt.Sprintf("%s rejected: %v (changes before it were applied)", name, err)
			return out, fmt.Errorf("%w: %s", control.ErrInvalid, out.Message)
		}
		was := p.Old
		if was == "" {
			was = "default"
		}
		out.Changes = append(out.Changes, fmt.Sprintf("%s: %s -> %s (cycle %d)", name, was, p.New, res.Cycle))
		setParam(g.applied, p.Block, p.Param, p.New)
	}
	out.Applied = true
	out.Message = fmt.Sprintf("%d parameter(s) applied live; they last until the partition restarts (put them in the config file to keep them)", len(changes))
	return out, nil
}

func setParam(cfg *configs.Config, block, param, raw string) {
	for i := range cfg.Tasks {
		for j := range cfg.Tasks[i].Blocks {
			b := &cfg.Tasks[i].Blocks[j]
			if b.Name == block {
				v := b.Params[param]
				v.Raw = strings.TrimSpace(raw)
				b.Params[param] = v
			}
		}
	}
}
