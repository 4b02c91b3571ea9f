package sparkplug

import (
	"fmt"
	"testing"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// TestScanAllocatesNothing: the per-scan path (snapshot, device liveness,
// change detection over every tag) allocates nothing when nothing changed,
// so a 10 ms scan of a large image makes no garbage.
func TestScanAllocatesNothing(t *testing.T) {
	cfg := &configs.Config{Devices: []configs.Device{{Name: "d1", Tags: []configs.IOTag{{Name: "a", Area: configs.AreaInput}}}}}
	for i := 0; i < 1000; i++ {
		cfg.Tags = append(cfg.Tags, configs.Tag{Name: fmt.Sprintf("t%d", i), Deadband: 0.5})
	}
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Group: "g", Node: "n", StoreDir: t.TempDir(), HealthPeriod: 1 << 62}, p)
	if err != nil {
		t.Fatal(err)
	}
	defer n.st.Close()
	n.poll(true)           // first scan reports the initial values (buffered: not born)
	p.Set(tag.ID(5), 0.25) // inside the deadband: not reported
	n.poll(true)
	if a := testing.AllocsPerRun(50, func() { n.poll(true) }); a != 0 {
		t.Fatalf("a scan without changes allocates %v times", a)
	}
}
