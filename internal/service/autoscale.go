package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// Autoscale: a pool with enableAutoScale has its autoScaleFormula evaluated
// when autoscale is enabled (at pool add or Enable AutoScale) and then every
// autoScaleEvaluationInterval, each pool on its own Clock timer. The result
// is recorded in the pool's autoScaleRun and, when the evaluation succeeded,
// applied through the resize path (targets, $NodeDeallocationOption). The
// formula language is package autoscale; the samples it reads come from
// metrics.go.

// Autoscale limits and defaults (Azure's).
const (
	AutoScaleEvaluationIntervalDefault = 15 * time.Minute
	// AutoScaleMinIntervalDefault is the shortest evaluation interval;
	// Config.AutoScaleMinInterval lowers it for development and tests.
	AutoScaleMinIntervalDefault = 5 * time.Minute
	AutoScaleMaxInterval        = 168 * time.Hour
	// autoScaleEnableSpacing: Enable AutoScale at most once per 30 seconds
	// per pool (TooManyEnableAutoScaleRequests), or once per minimum
	// interval when that is shorter.
	autoScaleEnableSpacing = 30 * time.Second
	autoScaleMaxFormula    = 8192
)

// AutoScaleOperations are the autoscale calls of the REST API.
type AutoScaleOperations interface {
	PoolEnableAutoScale(ctx context.Context, account, poolID string, c *azbatch.EnablePoolAutoScaleContent, cond Conditions) (Object, error)
	PoolDisableAutoScale(ctx context.Context, account, poolID string) (Object, error)
	PoolEvaluateAutoScale(ctx context.Context, account, poolID string, c *azbatch.EvaluatePoolAutoScaleContent) (azbatch.AutoScaleRun, error)
}

// autoscaleState is the service's autoscale and metrics state.
type autoscaleState struct {
	metrics metricsState
	// timers are the pending evaluations by pool key; lastEnable the time
	// of each pool's last Enable AutoScale.
	timers     map[string]chan struct{}
	lastEnable map[string]time.Time
	formulas   map[string]parsedFormula
}

type parsedFormula struct {
	src string
	f   asFormula
}

func (s *Service) minInterval() time.Duration {
	if s.cfg.AutoScaleMinInterval > 0 {
		return s.cfg.AutoScaleMinInterval
	}
	return AutoScaleMinIntervalDefault
}

// parseFormula checks a formula as Azure does before setting it: its size,
// then its syntax; errors carry the formula error's code and details.
func parseFormula(src string) (asFormula, error) {
	if len(src) > autoScaleMaxFormula {
		return nil, batch.Errorf(http.StatusBadRequest, "AutoScaleFormulaTooLong", "The specified auto-scaling formula exceeds lengths limit.")
	}
	f, err := asParse(src)
	if err != nil {
		return nil, formulaError(err)
	}
	return f, nil
}

// formulaError turns a formula error into the 400 answer of Azure: the
// formula error's code (AutoScalingFormulaSyntaxError, ...), message and
// values.
func formulaError(err error) error {
	var fe *asError
	if errors.As(err, &fe) {
		e := batch.Errorf(http.StatusBadRequest, fe.Code, "%s", fe.Message)
		for _, v := range fe.Values {
			e.Values = append(e.Values, batch.KV{Key: v.Name, Value: v.Value})
		}
		return e
	}
	return batch.Errorf(http.StatusBadRequest, "AutoScalingFormulaSyntaxError", "The specified auto-scaling formula has a syntax error.").With("Message", err.Error())
}

// runError is the AutoScaleRunError of a failed evaluation.
func runError(err error) *azbatch.AutoScaleRunError {
	var fe *asError
	if !errors.As(err, &fe) {
		return &azbatch.AutoScaleRunError{Code: ptr("AutoScaleFormulaEvaluationError"), Message: ptr(err.Error())}
	}
	re := &azbatch.AutoScaleRunError{Code: ptr(fe.Code), Message: ptr(fe.Message)}
	for _, v := range fe.Values {
		re.Values = append(re.Values, azbatch.NameValuePair{Name: ptr(v.Name), Value: ptr(v.Value)})
	}
	return re
}

// parseInterval validates autoScaleEvaluationInterval (nil: the default).
func (s *Service) parseInterval(v *string) (time.Duration, error) {
	if v == nil || *v == "" {
		return AutoScaleEvaluationIntervalDefault, nil
	}
	d, err := batch.ParseDuration(*v)
	if err != nil {
		return 0, batch.InvalidProperty("autoScaleEvaluationInterval", *v, err.Error())
	}
	if d < s.minInterval() || d > AutoScaleMaxInterval {
		return 0, batch.InvalidProperty("autoScaleEvaluationInterval", *v,
			"The value must be between "+batch.FormatDuration(s.minInterval())+" and "+batch.FormatDuration(AutoScaleMaxInterval)+".")
	}
	return d, nil
}

// validateAutoScaleAdd checks the autoscale properties of a pool to add and
// sets them on its document.
func (s *Service) validateAutoScaleAdd(c *azbatch.CreatePoolContent, doc *azbatch.Pool) error {
	if !deref(c.EnableAutoScale) {
		if c.AutoScaleFormula != nil {
			return batch.InvalidProperty("autoScaleFormula", *c.AutoScaleFormula, "This property must not be specified if enableAutoScale is set to false.")
		}
		if c.AutoScaleEvaluationInterval != nil {
			return batch.InvalidProperty("autoScaleEvaluationInterval", *c.AutoScaleEvaluationInterval, "This property must not be specified if enableAutoScale is set to false.")
		}
		return nil
	}
	if c.TargetDedicatedNodes != nil {
		return batch.InvalidProperty("targetDedicatedNodes", itoa(*c.TargetDedicatedNodes), "This property must not be specified if enableAutoScale is set to true.")
	}
	if c.TargetLowPriorityNodes != nil {
		return batch.InvalidProperty("targetLowPriorityNodes", itoa(*c.TargetLowPriorityNodes), "This property must not be specified if enableAutoScale is set to true.")
	}
	if strings.TrimSpace(deref(c.AutoScaleFormula)) == "" {
		return batch.MissingProperty("autoScaleFormula")
	}
	if _, err := parseFormula(*c.AutoScaleFormula); err != nil {
		return err
	}
	d, err := s.parseInterval(c.AutoScaleEvaluationInterval)
	if err != nil {
		return err
	}
	if doc != nil {
		doc.EnableAutoScale = ptr(true)
		doc.AutoScaleFormula = ptr(*c.AutoScaleFormula)
		doc.AutoScaleEvaluationInterval = ptr(batch.FormatDuration(d))
	}
	return nil
}

func (s *Service) formulaLocked(pk, src string) (asFormula, error) {
	if s.as.formulas == nil {
		s.as.formulas = map[string]parsedFormula{}
	}
	if pf, ok := s.as.formulas[pk]; ok && pf.src == src {
		return pf.f, nil
	}
	f, err := parseFormula(src)
	if err != nil {
		return nil, err
	}
	s.as.formulas[pk] = parsedFormula{src: src, f: f}
	return f, nil
}

// autoScaleInputsLocked gathers what a formula reads of a pool.
func (s *Service) autoScaleInputsLocked(p *poolState) asInputs {
	in := asInputs{
		Now:                     s.now(),
		CurrentDedicatedNodes:   float64(deref(p.doc.CurrentDedicatedNodes)),
		CurrentLowPriorityNodes: float64(deref(p.doc.CurrentLowPriorityNodes)),
		TargetDedicatedNodes:    float64(deref(p.doc.TargetDedicatedNodes)),
		TargetLowPriorityNodes:  float64(deref(p.doc.TargetLowPriorityNodes)),
		Rand:                    rand.Float64,
		Samples:                 map[string][]asSample{},
	}
	in.TaskSlotsPerNode = float64(p.slotsPerNode())
	for _, n := range p.nodes {
		if deref(n.doc.State) == azbatch.NodeStatePreempted {
			in.PreemptedNodeCount++
		}
		if n.schedulable() {
			in.UsableNodeCount++
		}
	}
	if h := s.as.metrics.pools[key(p.account, p.id())]; h != nil {
		in.Samples = h.samples
	}
	return in
}

// evaluateLocked evaluates src on the pool and returns the AutoScaleRun
// and, when it succeeded, the result.
func (s *Service) evaluateLocked(p *poolState, f asFormula) (azbatch.AutoScaleRun, *asResult) {
	now := s.now()
	run := azbatch.AutoScaleRun{Timestamp: &now}
	res, err := f.Evaluate(s.autoScaleInputsLocked(p))
	if res.Results != "" {
		run.Results = ptr(res.Results)
	}
	if err != nil {
		run.Error = runError(err)
		return run, nil
	}
	return run, &res
}

// autoScaleLocked evaluates the pool's formula, records the run and
// applies a successful result. It returns the nodes to start once the
// writes are committed.
func (s *Service) autoScaleLocked(p *poolState, w *store.Writes) []provider.NodeSpec {
	pk := key(p.account, p.id())
	f, err := s.formulaLocked(pk, deref(p.doc.AutoScaleFormula))
	var run azbatch.AutoScaleRun
	var res *asResult
	if err != nil {
		now := s.now()
		run = azbatch.AutoScaleRun{Timestamp: &now, Error: runError(err)}
	} else {
		run, res = s.evaluateLocked(p, f)
	}
	p.doc.AutoScaleRun = &run
	if res == nil {
		s.log.Info("autoscale evaluation failed", "pool", p.id(), "code", deref(run.Error.Code))
		s.writePool(p, w)
		return nil
	}
	ded := int32(min(max(res.TargetDedicatedNodes, 0), MaxNodesPerPool))
	low := int32(min(max(res.TargetLowPriorityNodes, 0), MaxNodesPerPool-int(ded)))
	opt := azbatch.NodeDeallocationOptionRequeue
	if o := res.NodeDeallocationOption; o != "" {
		if v, err := validateDeallocation(ptr(azbatch.NodeDeallocationOption(o))); err == nil {
			opt = v
		}
	}
	if ded == deref(p.doc.TargetDedicatedNodes) && low == deref(p.doc.TargetLowPriorityNodes) {
		s.writePool(p, w)
		return nil
	}
	s.log.Info("autoscale", "pool", p.id(), "targetDedicatedNodes", ded, "targetLowPriorityNodes", low, "nodeDeallocationOption", opt)
	p.doc.TargetDedicatedNodes, p.doc.TargetLowPriorityNodes = &ded, &low
	p.deallocation = opt
	p.doc.ResizeErrors = nil
	s.touchPool(p, w)
	return s.reconcilePoolLocked(p, w)
}

// armAutoScaleLocked (re)starts the pool's evaluation timer: the next
// evaluation comes after d, then every interval.
func (s *Service) armAutoScaleLocked(p *poolState, d time.Duration) {
	pk := key(p.account, p.id())
	s.disarmAutoScaleLocked(pk)
	if s.as.timers == nil {
		s.as.timers = map[string]chan struct{}{}
	}
	cancel := make(chan struct{})
	s.as.timers[pk] = cancel
	t := s.cfg.Clock.NewTimer(d)
	go func() {
		select {
		case <-cancel:
			t.Stop()
		case <-s.stop:
			t.Stop()
		case <-t.C():
			s.autoScaleTick(pk, cancel)
		}
	}()
}

func (s *Service) disarmAutoScaleLocked(pk string) {
	if c, ok := s.as.timers[pk]; ok {
		close(c)
		delete(s.as.timers, pk)
	}
}

// autoScaleTick runs a due evaluation, unless its timer was replaced or the
// pool is gone, and arms the next.
func (s *Service) autoScaleTick(pk string, cancel chan struct{}) {
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		return
	default:
	}
	if s.as.timers[pk] != cancel {
		s.mu.Unlock()
		return
	}
	delete(s.as.timers, pk)
	p, ok := s.pools[pk]
	if !ok || !deref(p.doc.EnableAutoScale) || deref(p.doc.State) == azbatch.PoolStateDeleting {
		s.mu.Unlock()
		return
	}
	var w store.Writes
	starts := s.autoScaleLocked(p, &w)
	err := s.commit(context.Background(), &w)
	s.armAutoScaleLocked(p, s.poolIntervalLocked(p))
	s.mu.Unlock()
	if err != nil {
		s.log.Error("autoscale write", "pool", p.id(), "err", err)
		return
	}
	s.startNodes(starts)
}

func (s *Service) poolIntervalLocked(p *poolState) time.Duration {
	d, err := batch.ParseDuration(deref(p.doc.AutoScaleEvaluationInterval))
	if err != nil || d <= 0 {
		return AutoScaleEvaluationIntervalDefault
	}
	return d
}

// startAutoScaleLocked evaluates a pool whose autoscale was just enabled
// and arms its timer.
func (s *Service) startAutoScaleLocked(p *poolState, w *store.Writes) []provider.NodeSpec {
	starts := s.evaluateNowLocked(p, w)
	s.armAutoScaleLocked(p, s.poolIntervalLocked(p))
	return starts
}

// evaluateNowLocked samples the pool and applies its formula now, outside
// its schedule.
func (s *Service) evaluateNowLocked(p *poolState, w *store.Writes) []provider.NodeSpec {
	s.samplePoolNowLocked(p)
	return s.autoScaleLocked(p, w)
}

// startAutoScale starts the metric sampler and arms the timers of the
// autoscale pools loaded from the store: the next evaluation is one
// interval after the last.
func (s *Service) startAutoScale() {
	s.wg.Add(1)
	go s.runMetrics()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, p := range s.pools {
		if !deref(p.doc.EnableAutoScale) || deref(p.doc.State) == azbatch.PoolStateDeleting {
			continue
		}
		d := time.Duration(0)
		if r := p.doc.AutoScaleRun; r != nil && r.Timestamp != nil {
			d = max(s.poolIntervalLocked(p)-now.Sub(*r.Timestamp), 0)
		}
		s.armAutoScaleLocked(p, d)
	}
}

// PoolEnableAutoScale enables autoscale on a pool, or changes the formula
// or interval of an autoscale pool (at least one of them), and evaluates
// the formula at once. As Azure documents, the evaluation schedule starts
// again from now when autoscale was off or the interval is given; a new
// formula alone keeps the schedule.
func (s *Service) PoolEnableAutoScale(ctx context.Context, account, poolID string, c *azbatch.EnablePoolAutoScaleContent, cond Conditions) (Object, error) {
	var f string
	if c.AutoScaleFormula != nil {
		f = *c.AutoScaleFormula
		if _, err := parseFormula(f); err != nil {
			return Object{}, err
		}
	}
	if c.AutoScaleEvaluationInterval != nil {
		if _, err := s.parseInterval(c.AutoScaleEvaluationInterval); err != nil {
			return Object{}, err
		}
	}
	s.mu.Lock()
	p, err := s.writablePoolLocked(account, poolID, cond)
	if err != nil {
		s.mu.Unlock()
		return Object{}, err
	}
	enabled := deref(p.doc.EnableAutoScale)
	if !enabled && strings.TrimSpace(f) == "" || enabled && f == "" && c.AutoScaleEvaluationInterval == nil {
		s.mu.Unlock()
		return Object{}, batch.MissingProperty("autoScaleFormula")
	}
	if !enabled && deref(p.doc.AllocationState) != azbatch.AllocationStateSteady {
		s.mu.Unlock()
		return Object{}, batch.Conflict("PoolBeingResized", "The specified pool is being resized: autoscale cannot be enabled while a resize is in progress.").With("id", poolID)
	}
	pk := key(p.account, p.id())
	now := s.now()
	spacing := min(autoScaleEnableSpacing, s.minInterval())
	if last, ok := s.as.lastEnable[pk]; ok && now.Sub(last) < spacing {
		s.mu.Unlock()
		return Object{}, batch.Errorf(http.StatusServiceUnavailable, "TooManyEnableAutoScaleRequests",
			"Too many Enable Pool AutoScale requests are issued on the pool: wait %s between them.", spacing).With("id", poolID)
	}
	if s.as.lastEnable == nil {
		s.as.lastEnable = map[string]time.Time{}
	}
	s.as.lastEnable[pk] = now
	p.doc.EnableAutoScale = ptr(true)
	if f != "" {
		p.doc.AutoScaleFormula = ptr(f)
	}
	restart := c.AutoScaleEvaluationInterval != nil || !enabled
	if restart {
		d, _ := s.parseInterval(c.AutoScaleEvaluationInterval)
		p.doc.AutoScaleEvaluationInterval = ptr(batch.FormatDuration(d))
	}
	var w store.Writes
	s.touchPool(p, &w)
	var starts []provider.NodeSpec
	if restart {
		starts = s.startAutoScaleLocked(p, &w)
	} else {
		starts = s.evaluateNowLocked(p, &w)
	}
	err = s.commit(ctx, &w)
	o, oerr := p.object()
	s.mu.Unlock()
	if err != nil {
		return Object{}, err
	}
	s.startNodes(starts)
	return o, oerr
}

// PoolDisableAutoScale stops autoscale: the pool keeps its current targets.
func (s *Service) PoolDisableAutoScale(ctx context.Context, account, poolID string) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, Conditions{})
	if err != nil {
		return Object{}, err
	}
	pk := key(p.account, p.id())
	s.disarmAutoScaleLocked(pk)
	delete(s.as.formulas, pk)
	p.doc.EnableAutoScale = ptr(false)
	p.doc.AutoScaleFormula = nil
	p.doc.AutoScaleEvaluationInterval = nil
	p.doc.AutoScaleRun = nil
	var w store.Writes
	s.touchPool(p, &w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return p.object()
}

// PoolEvaluateAutoScale evaluates a formula on an autoscale pool without
// applying it.
func (s *Service) PoolEvaluateAutoScale(ctx context.Context, account, poolID string, c *azbatch.EvaluatePoolAutoScaleContent) (azbatch.AutoScaleRun, error) {
	if c.AutoScaleFormula == nil {
		return azbatch.AutoScaleRun{}, batch.MissingProperty("autoScaleFormula")
	}
	f, err := parseFormula(*c.AutoScaleFormula)
	if err != nil {
		return azbatch.AutoScaleRun{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return azbatch.AutoScaleRun{}, err
	}
	if !deref(p.doc.EnableAutoScale) {
		return azbatch.AutoScaleRun{}, batch.Conflict("AutoScalingNotEnabled", "The specified pool does not have automatic scaling enabled: a formula can only be evaluated on a pool with autoscale enabled.").With("id", poolID)
	}
	run, _ := s.evaluateLocked(p, f)
	return run, nil
}

// errAutoScaleEnabled answers a resize of an autoscale pool (409, as Azure).
func errAutoScaleEnabled(poolID string) error {
	return batch.Conflict("AutoScalingEnabled", "The specified pool has automatic scaling enabled: it cannot be resized manually; disable autoscale first.").With("id", poolID)
}
