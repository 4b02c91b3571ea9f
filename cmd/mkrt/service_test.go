package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestServiceUnit(t *testing.T) {
	cmd := newServiceCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"unit"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "Restart=always", "WatchdogSec=", "KillMode=process", "ExecStart=/usr/local/bin/mkrt run /etc/mkrt/%i.yaml"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("unit lacks %q:\n%s", want, out.String())
		}
	}
}
