package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// controller serves the control socket: status, tags, writes, parameter
// changes and hand-overs of the running deployment.
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

func (c *controller) Set(ctx context.Context, name, value string) (control.Result, error) {
	res := control.Result{Tag: name, Value: value}
	ch := c.d.current().ch
	infos := ch.Tags()
	id := tag.ID(-1)
	for i, in := range infos {
		if in.Name == name {
			id = tag.ID(i)
		}
	}
	if id < 0 {
		return res, fmt.Errorf("%w: no tag %q (mkrt tags lists them)", control.ErrNotFound, name)
	}
	w := wire.Command{Kind: wire.WriteTag, Tag: id, Origin: wire.NewOrigin("cli:mkrt set")}
	switch infos[id].Type {
	case tag.String:
		w.Value = wire.Text(value)
	case tag.Bool:
		v, err := (configs.Value{Raw: value}).Bool()
		if err != nil {
			return res, fmt.Errorf("%w: %s is a bool: %v", control.ErrInvalid, name, err)
		}
		if v {
			w.Value = wire.Number(1)
		}
	default:
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return res, fmt.Errorf("%w: %s is a number: %q is not one", control.ErrInvalid, name, value)
		}
		w.Value = wire.Number(v)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := ch.Write(ctx, w)
	if err != nil {
		switch {
		case errors.Is(err, wire.ErrReadOnly):
			return res, fmt.Errorf("%w: %s is not writable", control.ErrForbidden, name)
		case errors.Is(err, wire.ErrUnknownTag):
			return res, fmt.Errorf("%w: %s", control.ErrNotFound, name)
		case errors.Is(err, wire.ErrOutOfRange), errors.Is(err, wire.ErrWrongType):
			return res, fmt.Errorf("%w: %s = %s: %v", control.ErrInvalid, name, value, err)
		default:
			return res, fmt.Errorf("%w: %v", control.ErrUnavailable, err)
		}
	}
	res.Applied, res.Status, res.Cycle, res.Old = true, r.Status, r.Cycle, r.Old
	res.Message = fmt.Sprintf("applied at cycle %d (was %s)", r.Cycle, strconv.FormatFloat(r.Old, 'g', -1, 64))
	return res, nil
}

// Apply applies a changed config. Function-block parameters go through the
// command ring at a cycle boundary; a structural change is handed over to
// a new generation of the partition (see handOver) when it can be, and
// refused with the reason otherwise, the running plant left as it is.
func (c *controller) Apply(ctx context.Context, text []byte) (control.ApplyResult, error) {
	var out control.ApplyResult
	nc, err := configs.LoadBytes("applied config", text)
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
