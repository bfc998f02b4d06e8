// Package scheduler holds the scheduling decisions as pure functions over a
// snapshot of candidates, so they can be tested and benchmarked without a
// server. The service owns the queues and applies the decisions.
package scheduler

// Fill is a pool's taskSchedulingPolicy.nodeFillType.
type Fill int

const (
	// Spread places each task on the node with the most free slots.
	Spread Fill = iota
	// Pack fills a node before using the next one: the node with the fewest
	// free slots that still fit the task.
	Pack
)

// Candidate is a node that may take tasks.
type Candidate struct {
	Free int // free task slots
}

// Pick returns the index of the candidate a task needing `required` slots
// goes to, or -1 when none fits. Ties go to the lowest index, so placement
// is deterministic for a given candidate order.
func Pick(cands []Candidate, required int, fill Fill) int {
	best := -1
	for i, c := range cands {
		if c.Free < required {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		switch fill {
		case Pack:
			if c.Free < cands[best].Free {
				best = i
			}
		default:
			if c.Free > cands[best].Free {
				best = i
			}
		}
	}
	return best
}
