package retain

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
	"github.com/mkrt/mkrt/supervisor"
)

// Seed writes the values kept in store into a freshly formatted region's
// image, checked against cfg's tags (Restore), where the executive takes
// them from when it starts (rtkernel/app): the same path for a child
// process, a guest or a second kernel, none of which read the file. No
// file is no error.
func Seed(ctx context.Context, region *shm.Region, l *shm.Layout, cfg *configs.Config, store *Store, log *slog.Logger) error {
	vals, err := store.Load()
	if err != nil || len(vals) == 0 {
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return err
	}
	tab, err := cfg.TagTable()
	if err != nil {
		return err
	}
	n, skipped := Restore(tab, vals)
	log.Info("retained values seeded", "tags", n, "skipped", skipped)
	return shm.Seed(ctx, region, l, tab.Samples, tab.Text)
}

// Keep saves the retain tags' values (of the tag directory dir) whenever
// they change — at most once a second — and when ctx ends, until then.
// image reads the partition's current image. Only good values are taken:
// a tag that is not good (a stale image while the partition is down, a
// failed write) keeps the value last saved for it.
func Keep(ctx context.Context, dir []tag.Info, image func() (shm.Image, error), store *Store, log *slog.Logger) error {
	var ids []tag.ID
	for i, in := range dir {
		if in.Retain {
			ids = append(ids, tag.ID(i))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	saver := NewSaver(store, time.Second, supervisor.RealClock{}, log)
	done := make(chan error, 1)
	go func() { done <- saver.Run(ctx) }()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	k := kept{latest: make([]Value, len(ids)), have: make([]bool, len(ids))}
	for {
		select {
		case <-ctx.Done():
			return <-done
		case <-t.C:
		}
		img, err := image()
		if err != nil || img.Cycle == 0 {
			continue
		}
		if k.update(ids, dir, &img) {
			saver.Update(k.values())
		}
	}
}

// kept is the last good value of each retain tag.
type kept struct {
	latest []Value
	have   []bool // latest[i] is known
}

// update takes the good values of the retain tags ids from img and
// reports whether any changed.
func (k *kept) update(ids []tag.ID, dir []tag.Info, img *shm.Image) bool {
	changed := false
	for i, id := range ids {
		if int(id) >= len(img.Samples) {
			continue
		}
		s := img.Samples[id]
		if s.Quality != tag.Good {
			continue
		}
		v := Value{Name: dir[id].Name, Value: s.Value, Text: img.Text[id]}
		if k.have[i] && equal(k.latest[i], v) {
			continue
		}
		k.latest[i], k.have[i], changed = v, true, true
	}
	return changed
}

func (k *kept) values() []Value {
	vals := make([]Value, 0, len(k.latest))
	for i := range k.latest {
		if k.have[i] {
			vals = append(vals, k.latest[i])
		}
	}
	return vals
}

// equal is a == b, with NaN equal to NaN.
func equal(a, b Value) bool {
	return a == b || (a.Name == b.Name && a.Text == b.Text && a.Value != a.Value && b.Value != b.Value)
}
