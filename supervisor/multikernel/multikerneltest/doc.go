// Package multikerneltest holds fakes of the multikernel kernel interface
// for tests: encoders and decoders of the baseline and overlay device trees
// and a fake kernel (kernfs tree plus syscalls) that enforces the pinned
// instance state machine. Nothing here needs privileges.
package multikerneltest
