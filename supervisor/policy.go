package supervisor

import "time"

// RestartPolicy is exponential backoff with crash-loop detection: the
// delay before restart n (1-based, counted since the last stable run)
// is Initial·2^(n-1), capped at Max; more than Burst restarts within
// Window is a crash loop. A run that lasted at least Window resets the
// backoff. The zero value uses the defaults below.
type RestartPolicy struct {
	Initial time.Duration // default 200ms
	Max     time.Duration // default 30s
	Burst   int           // default 5
	Window  time.Duration // default 60s
}

func (p RestartPolicy) withDefaults() RestartPolicy {
	if p.Initial <= 0 {
		p.Initial = 200 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Second
	}
	if p.Burst <= 0 {
		p.Burst = 5
	}
	if p.Window <= 0 {
		p.Window = time.Minute
	}
	return p
}

// restartTracker applies a RestartPolicy to the history of one partition.
type restartTracker struct {
	p        RestartPolicy
	restarts []time.Time // restarts within the window
	streak   int         // consecutive restarts without a stable run
}

// next is called when the partition went down at now after running since
// `since` (zero if it never ran). It returns the delay before the next
// start, or crashLoop when the partition must not be restarted.
func (t *restartTracker) next(now, since time.Time) (delay time.Duration, crashLoop bool) {
	p := t.p.withDefaults()
	if !since.IsZero() && now.Sub(since) >= p.Window {
		t.streak = 0
	}
	kept := t.restarts[:0]
	for _, r := range t.restarts {
		if now.Sub(r) < p.Window {
			kept = append(kept, r)
		}
	}
	t.restarts = kept
	if len(t.restarts) >= p.Burst {
		return 0, true
	}
	t.restarts = append(t.restarts, now)
	t.streak++
	delay = p.Initial
	for i := 1; i < t.streak && delay < p.Max; i++ {
		delay *= 2
	}
	return min(delay, p.Max), false
}

func (t *restartTracker) reset() { t.restarts, t.streak = nil, 0 }
