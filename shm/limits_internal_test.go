package shm

import (
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// TestConfigLimitsFitLayout: the name limits configs validates at a
// position are the sizes of the region's tables, so a valid config never
// fails later in NewLayout.
func TestConfigLimitsFitLayout(t *testing.T) {
	for _, c := range []struct {
		what          string
		config, table int
	}{
		{"metadata.name / header partition", configs.MaxPartitionName, partitionMax},
		{"tag name / directory", configs.MaxTagName, nameMax},
		{"device name / directory", configs.MaxDeviceName, nameMax},
		{"unit / directory", configs.MaxUnit, unitMax},
		{"task name / task table", configs.MaxTaskName, taskNameMax},
	} {
		if c.config != c.table {
			t.Errorf("%s: configs allows %d bytes, the region holds %d", c.what, c.config, c.table)
		}
	}
}
