package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/wire"
)

func TestEveryWriteRecorded(t *testing.T) {
	max := 10.0
	p, _ := bridgetest.NewPlantFromConfig(&configs.Config{Tags: []configs.Tag{{Name: "sp", Writable: true, Max: &max, Initial: configs.Value{Raw: "3", Set: true}}}}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, time.Millisecond)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ap := audit.Wrap(p, l)
	if _, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(7), Origin: wire.NewOrigin("json:nodered")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Write(ctx, wire.Command{Kind: wire.WriteTag, Tag: 0, Value: wire.Number(70), Origin: wire.NewOrigin("modbus:10.0.0.9:5000")}); err == nil {
		t.Fatal("out of range accepted")
	}
	l.Close()
	f, _ := os.Open(path)
	defer f.Close()
	var es []audit.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	if e := es[0]; !e.OK || e.Tag != "sp" || e.Old != 3.0 || e.New != 7.0 || e.Who != "nodered" || e.Cycle == 0 {
		t.Fatalf("accepted write: %+v", e)
	}
	if e := es[1]; e.OK || e.Error == "" || e.Source != "modbus" {
		t.Fatalf("rejected write: %+v", e)
	}
}
