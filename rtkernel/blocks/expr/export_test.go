package expr

// CompileUnfused is Compile without fused instructions.
func CompileUnfused(src string, resolve Resolver) (*Program, error) {
	fusing = false
	defer func() { fusing = true }()
	return Compile(src, resolve)
}
