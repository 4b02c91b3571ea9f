//go:build !linux

package jailhouse

// OpenDevice reports that Jailhouse needs Linux.
func OpenDevice(path string) (Device, error) { return nil, ErrNoDriver }
