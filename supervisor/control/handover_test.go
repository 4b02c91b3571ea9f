package control_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
)

// mkrt status shows the last hand-over, and it crosses the socket intact.
func TestStatusShowsHandOver(t *testing.T) {
	ctrl := fakeController()
	h := &supervisor.HandOver{Generation: 2, Cycle: 1234, Time: time.Unix(1, 0).UTC(), Retries: 1, BlockCounts: wire.BlockCounts{Carried: 3, Fresh: 2}, Took: 241 * time.Millisecond, Mode: wire.Driving, Driven: 50, CPUs: "0"}
	ctrl.St.HandOver = h
	var b bytes.Buffer
	if err := control.WriteStatus(&b, ctrl.St); err != nil {
		t.Fatal(err)
	}
	want := "generation 2 at cycle 1234, 0 missed cycles, 1 retries, carried 3 blocks (2 fresh, 0 dropped), 241ms from apply to switch"
	if !strings.Contains(b.String(), "hand-over:") || !strings.Contains(b.String(), want) {
		t.Errorf("status output lacks %q:\n%s", want, b.String())
	}
	_, c := serve(t, ctrl)
	st, err := c.Status(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.HandOver == nil || *st.HandOver != *h {
		t.Errorf("hand-over over the socket = %+v, want %+v", st.HandOver, h)
	}
}
