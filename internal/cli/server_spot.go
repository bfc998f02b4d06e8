package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/kilnbatch/kiln/internal/service"
)

// spotFlags are the `kiln server` flags that simulate the preemption of
// Spot/low-priority nodes.
type spotFlags struct {
	rate         float64
	schedule     string
	replaceDelay time.Duration
}

func (f *spotFlags) register(fs *pflag.FlagSet) {
	fs.Float64Var(&f.rate, "spot-preemption-rate", 0, "probability that a given low-priority node is preempted within a minute, 0 to 1 (default 0: only on schedule or on demand with 'kiln node preempt')")
	fs.StringVar(&f.schedule, "spot-preemption-schedule", "", "comma-separated times after server start at which one running low-priority node is preempted (an entry waits for one if none runs), e.g. 30s,2m,2m,10m")
	fs.DurationVar(&f.replaceDelay, "spot-replace-delay", 0, "how long a preempted node stays preempted before it is replaced under the same id (default 30s)")
}

func (f *spotFlags) config() (service.SpotConfig, error) {
	if f.rate < 0 || f.rate > 1 {
		return service.SpotConfig{}, fmt.Errorf("--spot-preemption-rate: %v is not a probability between 0 and 1", f.rate)
	}
	if f.replaceDelay < 0 {
		return service.SpotConfig{}, fmt.Errorf("--spot-replace-delay: must not be negative")
	}
	sched, err := service.ParseSpotSchedule(f.schedule)
	if err != nil {
		return service.SpotConfig{}, fmt.Errorf("--spot-preemption-schedule: %w", err)
	}
	return service.SpotConfig{Rate: f.rate, Schedule: sched, ReplaceDelay: f.replaceDelay}, nil
}
