package configs

import "syscall"

// fsSize is the size of the file system holding dir, if it can be read.
func fsSize(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks == 0 {
		return 0, false
	}
	return int64(st.Blocks) * int64(st.Bsize), true
}
