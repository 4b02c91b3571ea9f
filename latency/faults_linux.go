package latency

import (
	"bytes"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// faultReader reads the page faults of task threads from
// /proc/self/task/TID/stat and the process's from getrusage, into buffers
// of its own.
type faultReader struct {
	paths []string
	buf   [1024]byte
}

func newFaultReader(tids []int) *faultReader {
	r := &faultReader{}
	for _, tid := range tids {
		r.paths = append(r.paths, "/proc/self/task/"+strconv.Itoa(tid)+"/stat")
	}
	return r
}

// read is one complete reading; false once a thread is gone.
func (r *faultReader) read() (faultSample, bool) {
	s := faultSample{at: time.Now()}
	for _, p := range r.paths {
		f, ok := r.thread(p)
		if !ok {
			return s, false
		}
		s.threads.minor += f.minor
		s.threads.major += f.major
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return s, false
	}
	s.process = faults{minor: uint64(ru.Minflt), major: uint64(ru.Majflt)}
	return s, true
}

// thread reads minflt and majflt (fields 10 and 12) of a stat file.
func (r *faultReader) thread(path string) (faults, bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return faults{}, false
	}
	n, err := unix.Read(fd, r.buf[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return faults{}, false
	}
	return parseStatFaults(r.buf[:n])
}

// parseStatFaults takes minflt and majflt from a /proc/…/stat line: after
// the command's closing parenthesis come state (field 3) … minflt (10),
// cminflt (11), majflt (12).
func parseStatFaults(b []byte) (faults, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return faults{}, false
	}
	fs := bytes.Fields(b[i+1:])
	if len(fs) < 10 {
		return faults{}, false
	}
	minor, err1 := strconv.ParseUint(string(fs[7]), 10, 64)
	major, err2 := strconv.ParseUint(string(fs[9]), 10, 64)
	return faults{minor: minor, major: major}, err1 == nil && err2 == nil
}
