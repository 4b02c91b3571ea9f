package configs_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mkrt/mkrt/configs"
)

// TestSharedMemoryBeyondDevShm: a shared_memory larger than /dev/shm used
// to pass validation and kill the supervisor with SIGBUS while it
// formatted the region. The test runs itself again in a private mount
// namespace with a 1 MiB tmpfs over /dev/shm.
func TestSharedMemoryBeyondDevShm(t *testing.T) {
	src := header + "partition: {shared_memory: 4Mi}\n"
	if os.Getenv("MKRT_TEST_SMALL_DEV_SHM") == "1" {
		expect(t, src, loadErrors(t, "testdata/x.yaml", src), []problem{{"2:28", "partition.shared_memory 4Mi is larger than /dev/shm on this host (1Mi)"}})
		// The backends whose region is not a file in /dev/shm are not bound by it.
		other := header + "partition: {shared_memory: 4Mi, backend: multikernel}\n"
		for _, e := range loadErrors(t, "testdata/x.yaml", other) {
			if strings.Contains(e.Msg, "/dev/shm") {
				t.Errorf("multikernel: %v", e)
			}
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small /dev/shm in a private mount namespace needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed: a small /dev/shm is not covered")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" -test.run '^TestSharedMemoryBeyondDevShm$' -test.count=1 -test.v`, exe)
	cmd.Env = append(os.Environ(), "MKRT_TEST_SMALL_DEV_SHM=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSharedMemoryBeyondDevShm") {
		t.Fatalf("in a namespace with a 1 MiB /dev/shm: %v\n%s", err, out)
	}
	// The host's own /dev/shm is untouched and large enough.
	if _, err := configs.LoadBytes("x.yaml", []byte(header+"partition: {shared_memory: 1Mi}\n")); err != nil {
		t.Error(err)
	}
}
