package sparkplug

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/bridge/sparkplug/sproto"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// FuzzNCMD: any NCMD/DCMD payload is decoded and handled, or refused,
// never a panic and never a goroutine per metric.
func FuzzNCMD(f *testing.F) {
	one := 1.0
	p, err := bridgetest.NewPlantFromConfig(&configs.Config{
		Devices: []configs.Device{{Name: "rio1", Tags: []configs.IOTag{{Name: "pump", Area: configs.AreaCoil}}}},
		Tags: []configs.Tag{
			{Name: "setpoint", Type: tag.Float64, Writable: true, Min: new(float64), Max: &one},
			{Name: "mode", Type: tag.Int16, Writable: true},
			{Name: "recipe", Type: tag.String, Writable: true, Length: 8},
		}}, 0)
	if err != nil {
		f.Fatal(err)
	}
	n, err := New(Config{Group: "g", Node: "n", StoreDir: f.TempDir(), Queue: 4}, p)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.st.Close() })
	seed := func(ms ...*sproto.Payload_Metric) {
		b, _ := proto.Marshal(&sproto.Payload{Metrics: ms})
		f.Add(b, false)
		f.Add(b, true)
	}
	seed(&sproto.Payload_Metric{Name: proto.String("setpoint"), Datatype: proto.Uint32(uint32(sproto.DataType_Double)), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 0.5}})
	seed(&sproto.Payload_Metric{Alias: proto.Uint64(1), Datatype: proto.Uint32(uint32(sproto.DataType_Int16)), Value: &sproto.Payload_Metric_IntValue{IntValue: 70000}})
	seed(&sproto.Payload_Metric{Name: proto.String("recipe"), Datatype: proto.Uint32(uint32(sproto.DataType_String)), Value: &sproto.Payload_Metric_StringValue{StringValue: "B-7"}})
	seed(&sproto.Payload_Metric{Name: proto.String("pump"), Datatype: proto.Uint32(uint32(sproto.DataType_Boolean)), IsNull: proto.Bool(true)})
	seed(&sproto.Payload_Metric{Name: proto.String(MetricScanRate), Datatype: proto.Uint32(uint32(sproto.DataType_Int64)), Value: &sproto.Payload_Metric_LongValue{LongValue: 1 << 62}})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}, false)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, payload []byte, device bool) {
		topic := n.topics.ncmd
		if device {
			topic = n.deviceTopic("DCMD", "rio1")
		}
		n.handle(ctx, inbound{topic: topic, payload: payload, who: plant.Principal{Protocol: "sparkplug"}})
		for len(n.writes) > 0 { // a worker would take them
			<-n.writes
		}
	})
}
