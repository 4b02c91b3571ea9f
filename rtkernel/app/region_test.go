package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/tag"
)

// seededRegion lays out cfg's region in a file of the test's and seeds it
// with tab's values, as the host side does before the program starts.
func seededRegion(t *testing.T, ctx context.Context, cfg *configs.Config, tab *tag.Table) (shm.Location, *shm.Layout) {
	t.Helper()
	layout, err := shm.NewLayout(shm.ParamsFor(cfg, tab, cfg.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	loc := shm.File(filepath.Join(t.TempDir(), "region"), layout.Size(), true)
	seed, err := shm.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	if err := shm.Seed(ctx, seed, layout, tab.Samples, tab.Text); err != nil {
		t.Fatal(err)
	}
	return loc, layout
}
