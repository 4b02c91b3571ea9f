// Package sproto is the Sparkplug B payload (org.eclipse.tahu.protobuf,
// specification v3.0) generated from sparkplug_b.proto.
//
// Regenerating needs protoc (Debian protobuf-compiler) and protoc-gen-go
// (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12); the
// build itself needs neither, the generated file is committed.
package sproto

//go:generate protoc --go_out=. --go_opt=paths=source_relative sparkplug_b.proto
