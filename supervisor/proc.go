package supervisor

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// What backends whose program outlives the supervisor (Adopter) share:
// naming one process across supervisors, watching a process that is not
// a child, and following a program's output file.

// ProcessStart is field 22 of <procRoot>/<pid>/stat, the process's start
// time in clock ticks after boot: with the pid (and the boot id) it names
// one process, whatever later reuses the pid. It is an error for a
// process that has ended (a zombie not yet reaped).
func ProcessStart(procRoot string, pid int) (uint64, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	// comm (field 2) is in parentheses and may hold spaces: count after it.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("supervisor: %s/%d/stat: no command field", procRoot, pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("supervisor: %s/%d/stat: %d fields after the command", procRoot, pid, len(f))
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("supervisor: pid %d has ended (state %s)", pid, f[0])
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// BootID is the kernel's boot id (read through readFile from
// <procRoot>/sys/kernel/random/boot_id), "" when unreadable.
func BootID(readFile func(string) ([]byte, error), procRoot string) string {
	b, err := readFile(procRoot + "/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// FollowFile copies what a program appends to the file at path into w
// (a Console), from offset from, until ended is done (and a last read).
func FollowFile(ended *Ending, path string, from int64, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		_, _ = io.Copy(w, f)
		select {
		case <-ended.Done():
			_, _ = io.Copy(w, f)
			return nil
		case <-t.C:
		}
	}
}

// WatchEnding is an Ending for process pid, which is not this process's
// child: it ends (with x, made when it ends) once the process has ended.
func WatchEnding(pid int, x func() Exit) (*Ending, error) {
	done, err := watchPID(pid)
	if err != nil {
		return nil, err
	}
	e := NewEnding()
	go func() {
		<-done
		e.End(x())
	}()
	return e, nil
}
