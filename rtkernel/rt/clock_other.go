//go:build !linux

package rt

import "time"

func sleepUntil(t time.Duration) {
	if d := t - time.Duration(nanotime()); d > 0 {
		time.Sleep(d)
	}
}

func nap(t time.Duration) { sleepUntil(t) }
