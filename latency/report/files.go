package report

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
)

type fileWriter = bufio.Writer

// writeFile writes file through a temporary file renamed into place, so a
// reader never sees half a report file.
func writeFile(file string, fill func(w *fileWriter) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriter(f)
	if err := fill(w); err != nil {
		return fmt.Errorf("report: %s: %w", file, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
