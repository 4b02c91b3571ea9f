package supervisortest

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// Controller is a control.Controller over a fixed status and a tag list:
// Set changes writable numeric tags, Apply accepts any config that does not
// contain "invalid". Calls are recorded.
type Controller struct {
	mu     sync.Mutex
	St     supervisor.Status
	TagsV  []control.TagValue
	calls  []string
	Config []byte
	// File is the file the last accepted config was read from.
	File string
}

// Status returns St.
func (c *Controller) Status() supervisor.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.St
}

// Tags returns a copy of TagsV.
func (c *Controller) Tags() []control.TagValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]control.TagValue(nil), c.TagsV...)
}

// Set writes a writable numeric tag.
func (c *Controller) Set(ctx context.Context, name, value string) (control.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "set "+name+"="+value)
	for i, t := range c.TagsV {
		if t.Name != name {
			continue
		}
		if !t.Writable {
			return control.Result{}, fmt.Errorf("fake: tag %s: %w: not writable", name, control.ErrForbidden)
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return control.Result{}, fmt.Errorf("fake: tag %s: %w: %q is not a number", name, control.ErrInvalid, value)
		}
		c.TagsV[i].Value = f
		return control.Result{Tag: name, Value: value, Applied: true}, nil
	}
	return control.Result{}, fmt.Errorf("fake: tag %s: %w", name, control.ErrNotFound)
}

// Apply accepts a config unless it contains "invalid".
func (c *Controller) Apply(ctx context.Context, file string, cfg []byte) (control.ApplyResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "apply")
	if contains(cfg, "invalid") {
		return control.ApplyResult{}, fmt.Errorf("fake: config.yaml:3:5: %w: unknown key", control.ErrInvalid)
	}
	c.Config, c.File = append([]byte(nil), cfg...), file
	return control.ApplyResult{Applied: true, Changes: []string{"tags: setpoint changed"}}, nil
}

func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

// Calls returns the recorded calls.
func (c *Controller) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}
