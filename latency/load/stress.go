package load

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// stressPackage is the Debian package that provides stress-ng.
const stressPackage = "stress-ng"

// findStressNG returns the stress-ng program to run.
func findStressNG(opts Options) (string, error) {
	if opts.StressNG != "" {
		if _, err := os.Stat(opts.StressNG); err != nil {
			return "", fmt.Errorf("load: %w: %s (install the Debian package %s: apt-get install %s): %w",
				ErrToolMissing, opts.StressNG, stressPackage, stressPackage, err)
		}
		return opts.StressNG, nil
	}
	p, err := exec.LookPath("stress-ng")
	if err != nil {
		return "", fmt.Errorf("load: %w: stress-ng not on $PATH (install the Debian package %s: apt-get install %s): %w",
			ErrToolMissing, stressPackage, stressPackage, err)
	}
	return p, nil
}

// stressArgs builds stress-ng's arguments for a kind. dir is the io kind's
// temporary directory.
func stressArgs(k Kind, opts Options, dir string) []string {
	n := strconv.Itoa(opts.Workers)
	var a []string
	switch k {
	case CPU:
		a = []string{"--cpu", n}
	case Memory:
		a = []string{"--vm", n, "--vm-bytes", opts.VMBytes}
	case IO:
		a = []string{"--hdd", n, "--hdd-bytes", opts.IOBytes, "--iomix", n, "--iomix-bytes", opts.IOBytes, "--temp-path", dir}
	}
	if opts.Duration > 0 {
		secs := int64((opts.Duration + 999_999_999) / 1_000_000_000)
		a = append(a, "--timeout", strconv.FormatInt(secs, 10)+"s")
	} else {
		// stress-ng's own default is 24 hours; the load ends at Stop anyway.
		a = append(a, "--timeout", "0")
	}
	if len(opts.CPUs) > 0 {
		cs := make([]string, len(opts.CPUs))
		for i, c := range opts.CPUs {
			cs[i] = strconv.Itoa(c)
		}
		a = append(a, "--taskset", strings.Join(cs, ","))
	}
	return append(a, "--quiet")
}
