// Package service holds Kiln's domain rules: the state machines of pools,
// nodes, jobs and tasks, the scheduler's queues and the agent protocol's
// server side. It keeps the live part of the state in memory (pools, nodes,
// jobs and every unfinished task) and writes every change through to the
// store, which is the record: a restarted server rebuilds itself from it.
//
// One mutex guards the in-memory state; each operation validates, mutates,
// and commits its writes in one store transaction before it answers.
package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// Defaults.
const (
	HeartbeatIntervalDefault = 10 * time.Second
	// NodeTimeoutDefault is how long a node may stay silent before it is
	// marked unusable and its tasks are requeued.
	NodeTimeoutDefault = 45 * time.Second
	// MaxNodesPerPool bounds targetDedicatedNodes + targetLowPriorityNodes.
	MaxNodesPerPool = 256
	// MaxTaskSlotsPerNode bounds taskSlotsPerNode.
	MaxTaskSlotsPerNode = 256
)

// Config configures a Service.
type Config struct {
	Store    store.Store
	Provider provider.Provider
	// Providers are more node providers pools may pick by name with the
	// metadata item kiln.provider (providers.go); Provider is the default.
	Providers []provider.Provider
	// AgentURL is the base URL agents use to reach the agent protocol.
	AgentURL string
	// AccountURL returns the public URL of an account's API (for "url"
	// properties and AZ_BATCH_ACCOUNT_URL).
	AccountURL        func(account string) string
	HeartbeatInterval time.Duration
	NodeTimeout       time.Duration
	// Storage signs URLs of Kiln's storage for autoStorageContainerName
	// resource files (nil: no storage; such files are refused).
	Storage StorageLinks
	// Applications resolves application package references (nil: none).
	Applications Applications
	Logger       *slog.Logger
	Now          func() time.Time
	// Clock is what the job schedule runner waits with (default
	// SystemClock). Now, when nil, is Clock.Now.
	Clock Clock
	// AutoScaleMinInterval is the shortest autoScaleEvaluationInterval
	// accepted (default AutoScaleMinIntervalDefault, Azure's 5 minutes;
	// lower it for development and tests). MetricsSampleInterval is how
	// often pools are sampled for autoscale formulas (default
	// MetricsSampleIntervalDefault, 30s).
	AutoScaleMinInterval  time.Duration
	MetricsSampleInterval time.Duration
	// Spot simulates the preemption of low-priority nodes (spot.go).
	Spot SpotConfig
}

// Service implements Operations and the agent protocol.
type Service struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	accounts map[string]*accountState // by lower-case name
	pools    map[string]*poolState    // by key(account, id)
	nodes    map[string]*nodeState    // by node id
	tokens   map[string]*nodeState    // by node token
	jobs     map[string]*jobState     // by key(account, id)
	tasks    map[string]*taskState    // unfinished tasks by taskKey
	started  time.Time
	// retention holds completed task directories to delete, by time.
	retention retentionHeap
	// multi holds the runs of the multi-instance tasks placed on nodes
	// (multi_instance.go); nil until the first.
	multi map[*taskState]*multiRun
	// sched holds the job schedules and the runner's due times.
	sched schedules
	// lc tracks stopped attempts and jobs in transitional states
	// (job_lifecycle.go); st the exact totals behind statistics
	// (stats_record.go).
	lc lifecycleState
	st statsState
	// as holds autoscale timers and pool metrics (autoscale.go,
	// metrics.go).
	as autoscaleState
	// ops keeps what node operations need in memory (node_ops.go).
	ops nodeOpsState
	// certs holds the certificates (certificates.go).
	certs certificates
	// spot tracks preempted low-priority nodes (spot.go).
	spot spotState
	// join holds the pools' join tokens and the standby agents (join.go).
	join joinState
	// obs receives the events behind the Prometheus metrics
	// (metrics_prom.go); nil: none.
	obs Observer

	stop chan struct{}
	wg   sync.WaitGroup
}

type accountState struct {
	store.Account
	keys [][]byte
}

func key(account, id string) string { return strings.ToLower(account) + "\x00" + strings.ToLower(id) }

func taskKey(account, jobID, id string) string {
	return strings.ToLower(account) + "\x00" + strings.ToLower(jobID) + "\x00" + strings.ToLower(id)
}

// New builds a Service and loads its state from the store.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = NodeTimeoutDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Clock.Now
	}
	if cfg.AccountURL == nil {
		cfg.AccountURL = func(string) string { return "" }
	}
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		accounts: map[string]*accountState{},
		pools:    map[string]*poolState{},
		nodes:    map[string]*nodeState{},
		tokens:   map[string]*nodeState{},
		jobs:     map[string]*jobState{},
		tasks:    map[string]*taskState{},
		stop:     make(chan struct{}),
		sched:    newSchedules(),
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Start runs the background loops (node health, pool sizes, retention, job
// schedules).
func (s *Service) Start() {
	s.wg.Add(2)
	go s.maintain()
	go s.runSchedules()
	s.startAutoScale()
	s.wg.Add(1)
	go s.runSpot()
	s.watchProviders() // provider_events.go
}

// Close stops the background loops. Nodes keep running: a restarted server
// adopts them again.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Lock()
	for _, n := range s.nodes {
		n.wakeLocked()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// EnsureAccount creates the account if it does not exist yet and returns it.
// key is base64; an empty key generates one.
func (s *Service) EnsureAccount(ctx context.Context, name, key string) (store.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[strings.ToLower(name)]; ok {
		return a.Account, nil
	}
	if key == "" {
		key = NewKey()
	}
	a := store.Account{Name: name, PrimaryKey: key, SecondaryKey: NewKey(), CreationTime: s.now()}
	if err := s.cfg.Store.AccountInsert(ctx, a); err != nil {
		return store.Account{}, err
	}
	if err := s.addAccountLocked(a); err != nil {
		return store.Account{}, err
	}
	return a, nil
}

func (s *Service) addAccountLocked(a store.Account) error {
	st := &accountState{Account: a}
	for _, k := range []string{a.PrimaryKey, a.SecondaryKey} {
		if k == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return fmt.Errorf("account %s: key is not base64: %w", a.Name, err)
		}
		st.keys = append(st.keys, b)
	}
	s.accounts[strings.ToLower(a.Name)] = st
	return nil
}

// AccountKeys returns the decoded keys of an account.
func (s *Service) AccountKeys(name string) ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return a.keys, true
}

// NewKey returns a new random 64-byte account key in base64, like Azure's.
func NewKey() string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newETag returns an ETag in Azure's style (0x8D... hexadecimal).
func (s *Service) newETag() string {
	return fmt.Sprintf("0x%X", s.now().UnixNano()/100+0x8D000000000000)
}

// commit writes w in one transaction. Called with s.mu held, so writes reach
// the store in the order the state changed.
func (s *Service) commit(ctx context.Context, w *store.Writes) error {
	s.flushStatsLocked(w)
	if w.Empty() {
		return nil
	}
	// The write must not be abandoned half-way because a client went away.
	start := time.Now()
	err := s.cfg.Store.Apply(context.WithoutCancel(ctx), w)
	s.observeCommit(time.Since(start), err) // metrics_prom.go
	if err != nil {
		s.log.Error("store write failed", "err", err)
		return fmt.Errorf("store write: %w", err)
	}
	return nil
}

// object encodes a document with its ETag and Last-Modified.
func object(doc any, etag *string, lastModified, created *time.Time) (Object, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return Object{}, err
	}
	o := Object{Doc: b}
	if etag != nil {
		o.ETag = *etag
	}
	if lastModified != nil {
		o.LastModified = *lastModified
	}
	if created != nil {
		o.CreationTime = *created
	}
	return o, nil
}

// checkConditions applies If-* headers to a resource about to be read
// (read=true: a match of If-None-Match answers 304) or changed (412).
func checkConditions(c Conditions, etag string, lastModified time.Time, read bool) error {
	failed := func() error {
		if read {
			return &batch.Error{Code: "ConditionNotMet", Status: 304, Message: "The condition specified using HTTP conditional header(s) is not met."}
		}
		return &batch.Error{Code: "ConditionNotMet", Status: 412, Message: "The condition specified using HTTP conditional header(s) is not met."}
	}
	if c.IfMatch != "" && c.IfMatch != "*" && strings.Trim(c.IfMatch, `"`) != etag {
		return &batch.Error{Code: "ConditionNotMet", Status: 412, Message: "The condition specified using HTTP conditional header(s) is not met."}
	}
	if c.IfNoneMatch != "" && (c.IfNoneMatch == "*" || strings.Trim(c.IfNoneMatch, `"`) == etag) {
		return failed()
	}
	lm := lastModified.Truncate(time.Second)
	if !c.IfModifiedSince.IsZero() && !lm.After(c.IfModifiedSince) {
		return failed()
	}
	if !c.IfUnmodifiedSince.IsZero() && lm.After(c.IfUnmodifiedSince) {
		return &batch.Error{Code: "ConditionNotMet", Status: 412, Message: "The condition specified using HTTP conditional header(s) is not met."}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// supportedAPIImage is the image the local provider's nodes report.
func (s *Service) SupportedImages() []azbatch.SupportedImage {
	var out []azbatch.SupportedImage
	for _, im := range s.providerImages() { // every provider's (providers.go)
		os := azbatch.OSType(im.OSType)
		out = append(out, azbatch.SupportedImage{
			NodeAgentSKUID:   ptr(im.NodeAgentSKUID),
			ImageReference:   &azbatch.ImageReference{Publisher: ptr(im.Publisher), Offer: ptr(im.Offer), SKU: ptr(im.SKU), Version: ptr(im.Version)},
			OSType:           &os,
			VerificationType: ptr(azbatch.ImageVerificationTypeVerified),
		})
	}
	return out
}
