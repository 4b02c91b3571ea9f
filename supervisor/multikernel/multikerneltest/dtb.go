package multikerneltest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/u-root/u-root/pkg/dt"
)

// Device is a baseline device: its label and PCI address.
type Device struct {
	Label string
	PCI   string
}

// BaselineSpec describes a baseline device tree.
type BaselineSpec struct {
	// CPUs are physical ids, written as 64-bit cells.
	CPUs                    []uint64
	MemoryBase, MemoryBytes uint64
	Devices                 []Device
}

// Baseline encodes spec the way kerf writes /sys/fs/multikernel/device_tree:
// /resources with cpus, memory-base, memory-bytes and devices, the labels
// kept in __symbols__ (dtc -@).
func Baseline(spec BaselineSpec) []byte {
	cpus := make([]byte, 0, 8*len(spec.CPUs))
	for _, c := range spec.CPUs {
		cpus = binary.BigEndian.AppendUint64(cpus, c)
	}
	var devs []*dt.Node
	var syms []dt.Property
	for i, d := range spec.Devices {
		name := fmt.Sprintf("device@%d", i)
		devs = append(devs, dt.NewNode(name, dt.WithProperty(dt.PropertyString("pci-id", d.PCI))))
		syms = append(syms, dt.PropertyString(d.Label, "/resources/devices/"+name))
	}
	res := dt.NewNode("resources", dt.WithProperty(
		dt.Property{Name: "cpus", Value: cpus},
		dt.PropertyU64("memory-base", spec.MemoryBase),
		dt.PropertyU64("memory-bytes", spec.MemoryBytes)),
		dt.WithChildren(dt.NewNode("devices", dt.WithChildren(devs...))))
	root := dt.NewNode("", dt.WithProperty(dt.PropertyString("compatible", "linux,multikernel-host")),
		dt.WithChildren(res, dt.NewNode("__symbols__", dt.WithProperty(syms...))))
	var b bytes.Buffer
	if _, err := (&dt.FDT{Header: dt.Header{Magic: dt.Magic, Version: 17, LastCompVersion: 16}, RootNode: root}).Write(&b); err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// Instance is an instance-create request read from an overlay.
type Instance struct {
	Name                    string
	ID                      int // 0: the kernel picks
	CPUs                    []uint64
	MemoryBase, MemoryBytes uint64
	Devices                 []string
}

// ParseOverlay reads an instance-create overlay as the kernel does: cpus
// must be 64-bit cells, memory-base and memory-bytes 64-bit numbers.
func ParseOverlay(b []byte) (Instance, error) {
	var in Instance
	f, err := dt.ReadFDT(bytes.NewReader(b))
	if err != nil {
		return in, err
	}
	if p, ok := f.RootNode.LookProperty("compatible"); !ok || strings.TrimRight(string(p.Value), "\x00") != "linux,multikernel-overlay" {
		return in, errors.New("overlay: root is not compatible with linux,multikernel-overlay")
	}
	frag, ok := f.RootNode.LookupChildByName("fragment@0")
	if !ok {
		return in, errors.New("overlay: no fragment@0")
	}
	ov, ok := frag.LookupChildByName("__overlay__")
	if !ok {
		return in, errors.New("overlay: no __overlay__")
	}
	create, ok := ov.LookupChildByName("instance-create")
	if !ok {
		return in, errors.New("overlay: no instance-create")
	}
	name, ok := create.LookProperty("instance-name")
	if !ok {
		return in, errors.New("overlay: no instance-name")
	}
	in.Name = strings.TrimRight(string(name.Value), "\x00")
	if id, ok := create.LookProperty("id"); ok {
		if len(id.Value) != 4 {
			return in, errors.New("overlay: id is not one 32-bit cell")
		}
		in.ID = int(binary.BigEndian.Uint32(id.Value))
	}
	res, ok := create.LookupChildByName("resources")
	if !ok {
		return in, errors.New("overlay: no resources")
	}
	cpus, ok := res.LookProperty("cpus")
	if !ok || len(cpus.Value) == 0 || len(cpus.Value)%8 != 0 {
		return in, errors.New("overlay: cpus is not a list of 64-bit cells")
	}
	for i := 0; i < len(cpus.Value); i += 8 {
		in.CPUs = append(in.CPUs, binary.BigEndian.Uint64(cpus.Value[i:]))
	}
	for _, x := range []struct {
		name string
		dst  *uint64
	}{{"memory-base", &in.MemoryBase}, {"memory-bytes", &in.MemoryBytes}} {
		p, ok := res.LookProperty(x.name)
		if !ok || len(p.Value) != 8 {
			return in, fmt.Errorf("overlay: %s is not a 64-bit number", x.name)
		}
		*x.dst = binary.BigEndian.Uint64(p.Value)
	}
	if d, ok := res.LookProperty("device-names"); ok {
		in.Devices = append(in.Devices, strings.Split(strings.TrimRight(string(d.Value), "\x00"), "\x00")...)
	}
	return in, nil
}
