package sparkplug_test

import (
	"context"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/sparkplug"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// TestSwitchRealiasesBuffer: data buffered while the node is not born (its
// primary host offline) is replayed after a Switch to other metrics under
// the aliases the new NBIRTH gives them, and what is gone is dropped — a
// metric buffered under an old alias must not land on another metric.
func TestSwitchRealiasesBuffer(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ch := subscribe(t, b.URL(false), mqttc.Options{})
	host := newCommander(t, b.URL(false))
	host.state(false, 1)
	r := startNode(t, b.URL(false), t.TempDir(), func(c *sparkplug.Config) { c.PrimaryHost = "scada" })
	buffered := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st := r.node.Status(); !st.Connected || st.Buffered < n; st = r.node.Status() {
			if time.Now().After(deadline) {
				t.Fatalf("not %d records buffered while the host is offline: %+v", n, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	buffered(1) // the first image
	r.plant.Set(idSetpoint, 61)
	r.plant.Set(idAlarm, 1)
	buffered(2)

	// The next generation: a new tag before setpoint (so setpoint's alias
	// moves), alarm gone (its alias now mode's).
	cfg := plantConfig()
	cfg.Tags = append([]configs.Tag{{Name: "extra", Type: tag.Float64}}, cfg.Tags[:2]...)
	p2, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	const setpoint2, mode2 = 3, 4
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p2.Start(ctx, 5*time.Millisecond)
	if err := r.node.Switch(ctx, p2); err != nil {
		t.Fatal(err)
	}
	host.state(true, 2)
	nb := expect(t, ch, "NBIRTH")
	if m := metric(nb.pl, "setpoint", 0); m == nil || m.GetAlias() != setpoint2 || metric(nb.pl, "alarm", 0) != nil || metric(nb.pl, "extra", 0) == nil {
		t.Fatalf("NBIRTH after the switch: setpoint %v, alarm %v, extra %v", m, metric(nb.pl, "alarm", 0), metric(nb.pl, "extra", 0))
	}
	for {
		m := expect(t, ch, "NDATA")
		if !m.pl.GetMetrics()[0].GetIsHistorical() {
			t.Fatalf("no buffered setpoint of 61 replayed before live data")
		}
		for _, mt := range m.pl.Metrics {
			if mt.Name != nil {
				t.Errorf("replayed metric with a name: %v", mt)
			}
			if want := map[uint64]sproto.DataType{setpoint2: sproto.DataType_Double, mode2: sproto.DataType_Int16}[mt.GetAlias()]; want != 0 && sproto.DataType(mt.GetDatatype()) != want {
				t.Fatalf("replayed a buffered %v under alias %d, which is a %v now", sproto.DataType(mt.GetDatatype()), mt.GetAlias(), want)
			}
		}
		if sp := metric(m.pl, "", setpoint2); sp != nil && sp.GetDoubleValue() == 61 {
			break
		}
	}
}
