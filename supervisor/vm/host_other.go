//go:build !linux

package vm

import "errors"

var errLinux = errors.New("vm: taps and vCPU pinning need Linux")

func createTap(string, string, string) error { return errLinux }
func deleteLink(string) error                { return nil }
func pinThread(int, int) error               { return errLinux }
