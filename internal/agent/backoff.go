package agent

import (
	"math/rand/v2"
	"time"
)

// Retry delays: 100ms doubling to 2s, plus up to 20% jitter.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 2 * time.Second
)

type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = backoffMin
	case b.d < backoffMax:
		b.d = min(2*b.d, backoffMax)
	}
	return b.d + rand.N(b.d/5)
}

func (b *backoff) reset() { b.d = 0 }
