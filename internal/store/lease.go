package store

import (
	"context"
	"errors"
	"time"
)

// ErrFenced is returned by writes of a store whose leader lease was taken
// over by another server: a deposed leader must not change the record.
var ErrFenced = errors.New("store: leader lease lost to another server (write fenced)")

// Leader describes the holder of the leader lease, as recorded in the store.
type Leader struct {
	// Holder identifies the server process (host, pid and a random suffix).
	Holder string
	// URL is where other servers and agents reach the leader.
	URL string
	// Fingerprint pins the leader's self-signed certificate ("SHA256:<hex>",
	// empty otherwise), so that followers can proxy to it over HTTPS.
	Fingerprint string
	// Epoch grows by one with every new leader.
	Epoch int64
	// Since is when Holder took the lease.
	Since time.Time
}

// Lease is a leader lease held by this process.
type Lease interface {
	// Epoch is the lease's epoch: the store's writes are fenced by it.
	Epoch() int64
	// Lost is closed when the lease may no longer be held (its database
	// connection failed): the holder must stop acting as leader at once.
	Lost() <-chan struct{}
	// Release gives the lease up, so that another server takes over without
	// waiting.
	Release() error
}

// Elector is implemented by stores that several servers can share
// (PostgreSQL): they elect one leader among them. The leader alone changes
// the record: once it holds a lease, every write of the store checks, in
// its own transaction, that the lease is still this leader's (else
// ErrFenced).
type Elector interface {
	// TryLead takes the leader lease if no other server holds it, recording
	// me (Holder, URL, Fingerprint) as the leader with a new epoch. It
	// returns (nil, nil) when another server holds it.
	TryLead(ctx context.Context, me Leader) (Lease, error)
	// CurrentLeader returns the leader recorded last; ok is false when no
	// server ever led.
	CurrentLeader(ctx context.Context) (l Leader, ok bool, err error)
}
