package autoscale

import (
	"errors"
	"math"
	"sort"
	"strings"
	"time"
)

// Sample is one metric sample of the pool.
type Sample struct {
	Time  time.Time
	Value float64
}

// Inputs are what a pool offers an evaluation.
type Inputs struct {
	// Now is the evaluation time: time() and the look-back windows of the
	// sample methods are relative to it. The zero value means time.Now().
	Now time.Time
	// Samples per system metric variable name without '$' (e.g. "CPUPercent",
	// "PendingTasks"), oldest first; the evaluator takes history windows from
	// here. Azure records a sample every 30 seconds (SamplePeriod).
	Samples map[string][]Sample
	// Plain values of the node-count variables. Formulas use these directly
	// ("$CurrentDedicatedNodes * 1.1"); their sample methods read Samples.
	CurrentDedicatedNodes, CurrentLowPriorityNodes, PreemptedNodeCount float64
	// TaskSlotsPerNode and UsableNodeCount back the read-only variables of the
	// same names that later versions of the docs list.
	TaskSlotsPerNode, UsableNodeCount float64
	// TargetDedicatedNodes and TargetLowPriorityNodes are the pool's current
	// targets: the initial values of the read-write variables.
	TargetDedicatedNodes, TargetLowPriorityNodes float64
	// Rand backs rand(); nil means math/rand/v2.
	Rand func() float64
}

// Result is a successful evaluation.
type Result struct {
	TargetDedicatedNodes, TargetLowPriorityNodes int
	// NodeDeallocationOption is requeue, terminate, taskcompletion or
	// retaineddata; requeue unless the formula sets it.
	NodeDeallocationOption string
	// Results is Azure's autoScaleRun.results string: every variable assigned,
	// "$Name=value;..." in Azure's formatting.
	Results string
	// Stopped reports that stop() ended the evaluation early.
	Stopped bool
}

// Read-write service variables and their documented aliases. "If both the
// fully named variable and its alias are set by the formula, the value
// assigned to the fully named variable will take precedence."
const (
	varTargetDedicated   = "$TargetDedicatedNodes"
	varTargetLowPriority = "$TargetLowPriorityNodes"
	varDeallocation      = "$NodeDeallocationOption"
	aliasDedicated       = "$TargetDedicated"
	aliasLowPriority     = "$TargetLowPriority"
)

// errStop unwinds evaluation when stop() is called; it never escapes Evaluate.
var errStop = errors.New("stop")

type env struct {
	in       *Inputs
	vars     map[string]value
	assigned map[string]bool
	// at is where each variable was last assigned, for errors about the
	// final values.
	at map[string]pos
}

// Evaluate runs the formula against a pool's inputs. Runtime failures are
// returned as *Error (InsufficientSampleData when a GetSample percentage is
// not met, CodeEvaluationError otherwise); Result.Results is filled in even
// then, as Azure reports the variables computed before the failure.
func (f *Formula) Evaluate(in Inputs) (Result, error) {
	if in.Now.IsZero() {
		in.Now = time.Now().UTC()
	}
	e := &env{in: &in, vars: map[string]value{
		varTargetDedicated:   double(in.TargetDedicatedNodes),
		varTargetLowPriority: double(in.TargetLowPriorityNodes),
		varDeallocation:      str("requeue"),
	}, assigned: map[string]bool{}, at: map[string]pos{}}
	var res Result
	for _, st := range f.stmts {
		err := e.exec(st)
		if err == errStop {
			res.Stopped = true
			break
		}
		if err != nil {
			res.Results = e.results()
			return res, err
		}
	}
	err := e.finish(&res)
	res.Results = e.results()
	return res, err
}

func (e *env) exec(st statement) error {
	if st.target == "" {
		if id, ok := st.x.(*ident); ok && !e.known(id.name) {
			// A bare unknown name is accepted and ignored: Azure evaluates
			// the formula "something_useless" without error.
			return nil
		}
		_, err := e.eval(st.x)
		return err
	}
	v, err := e.eval(st.x)
	if err != nil {
		return err
	}
	e.vars[st.target] = v
	e.assigned[st.target] = true
	e.at[st.target] = st.p
	return nil
}

func (e *env) known(name string) bool {
	if _, ok := e.vars[name]; ok {
		return true
	}
	if _, ok := metricVars[strings.TrimPrefix(name, "$")]; ok && name[0] == '$' {
		return true
	}
	_, ok := timeIntervals[name]
	return ok || deallocationOptions[name]
}

// finish turns the read-write variables into a Result. Targets must be
// doubles; fractions are truncated and negatives become 0, as a node count.
func (e *env) finish(res *Result) error {
	var err error
	if res.TargetDedicatedNodes, err = e.target(varTargetDedicated, aliasDedicated); err != nil {
		return err
	}
	if res.TargetLowPriorityNodes, err = e.target(varTargetLowPriority, aliasLowPriority); err != nil {
		return err
	}
	opt := e.vars[varDeallocation]
	if opt.k != kString || !deallocationOptions[strings.ToLower(opt.s)] {
		return evalErrorf(e.where(varDeallocation), "$NodeDeallocationOption must be one of requeue, terminate, taskcompletion, retaineddata; got %s", opt.format())
	}
	res.NodeDeallocationOption = strings.ToLower(opt.s)
	return nil
}

// effective is a read-write variable's final value: the full name wins when
// both it and its alias were assigned, the alias when only it was.
func (e *env) effective(name, alias string) value {
	return e.vars[e.effectiveName(name, alias)]
}

func (e *env) effectiveName(name, alias string) string {
	if !e.assigned[name] && e.assigned[alias] {
		return alias
	}
	return name
}

// where is the position of a variable's last assignment (1:1 if none).
func (e *env) where(name string) pos {
	if p, ok := e.at[name]; ok {
		return p
	}
	return pos{1, 1}
}

func (e *env) target(name, alias string) (int, error) {
	name = e.effectiveName(name, alias)
	v := e.vars[name]
	if v.k != kDouble {
		return 0, evalErrorf(e.where(name), "%s must be a double, not a %s", name, v.k)
	}
	if math.IsNaN(v.d) || math.IsInf(v.d, 0) {
		return 0, evalErrorf(e.where(name), "%s is not a finite number: %s", name, formatDouble(v.d))
	}
	switch {
	case v.d <= 0:
		return 0, nil
	case v.d >= math.MaxInt32:
		return math.MaxInt32, nil
	}
	return int(v.d), nil
}

// results renders autoScaleRun.results: the three read-write variables
// first, then every other variable the formula assigned, sorted by name, as
// in the documented output "$TargetDedicatedNodes=10;$NodeDeallocationOption=
// requeue;$curTime=2016-10-13T19:18:47.805Z;$isWeekday=1;...".
func (e *env) results() string {
	var b strings.Builder
	b.WriteString(varTargetDedicated + "=" + e.effective(varTargetDedicated, aliasDedicated).format() + ";")
	b.WriteString(varTargetLowPriority + "=" + e.effective(varTargetLowPriority, aliasLowPriority).format() + ";")
	b.WriteString(varDeallocation + "=" + e.vars[varDeallocation].format() + ";")
	var names []string
	for n := range e.assigned {
		switch n {
		case varTargetDedicated, varTargetLowPriority, varDeallocation, aliasDedicated, aliasLowPriority:
			// Reported once, under the full name, above.
		default:
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b.WriteString(n + "=" + e.vars[n].format() + ";")
	}
	return strings.TrimSuffix(b.String(), ";")
}
