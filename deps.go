//go:build deps

// This file pins the project's chosen dependencies in go.mod before every
// package that uses them exists; it is never built.
package mkrt

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/goburrow/modbus"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/simonvetter/modbus"
	_ "github.com/spf13/cobra"
	_ "github.com/u-root/u-root/pkg/cpio"
	_ "github.com/u-root/u-root/pkg/dt"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "golang.org/x/sys/unix"
	_ "gonum.org/v1/plot"
	_ "gonum.org/v1/plot/vg/vgimg"
	_ "gonum.org/v1/plot/vg/vgsvg"
	_ "google.golang.org/protobuf/proto"
	_ "gopkg.in/yaml.v3"
)
