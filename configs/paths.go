package configs

import (
	"path/filepath"
	"reflect"
	"slices"
)

// pathKeys are the keys that name a file or directory, by the struct they
// belong to. Load makes each absolute against the config file's directory,
// so the path that Validate checks is the path the bridge, the broker and
// the backends open, whatever their working directory.
var pathKeys = map[reflect.Type][]string{
	reflect.TypeFor[Kernel](): {"image", "initrd"},
	reflect.TypeFor[MQTT]():   {"password_file"},
	reflect.TypeFor[User]():   {"password_file"},
	reflect.TypeFor[TLS]():    {"ca", "cert", "key"},
	reflect.TypeFor[Store]():  {"dir"},
}

// resolvePaths makes every relative path in the config absolute (see
// pathKeys). A config not read from a file (no directory) is left as it is.
func (c *Config) resolvePaths() {
	if c.dir == "" {
		return
	}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			if v.Type() != cpuListType {
				for i := 0; i < v.Len(); i++ {
					walk(v.Index(i))
				}
			}
		case reflect.Struct:
			keys := pathKeys[v.Type()]
			for _, f := range fieldsOf(v.Type()) {
				fv := v.Field(f.index)
				if fv.Kind() == reflect.String && slices.Contains(keys, f.name) {
					fv.SetString(c.ResolvePath(fv.String()))
				} else {
					walk(fv)
				}
			}
		}
	}
	walk(reflect.ValueOf(c).Elem())
}

// absDir is the absolute directory of the config file name, "" for a
// config not read from a file.
func absDir(name string) string {
	if name == "" {
		return ""
	}
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		return filepath.Dir(name)
	}
	return dir
}
