package service

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/odata"
	"github.com/kilnbatch/kiln/internal/store"
)

// MaxResults is Azure's largest page.
const MaxResults = 1000

func itoa(v int32) string { return strconv.Itoa(int(v)) }

func limitOf(lp ListParams) int {
	if lp.Limit <= 0 || lp.Limit > MaxResults {
		return MaxResults
	}
	return lp.Limit
}

// matches evaluates a filter against an encoded document.
func matches(f *odata.Filter, doc []byte) (bool, error) {
	if f == nil {
		return true, nil
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return false, err
	}
	return f.Match(m), nil
}

// listed is what account-wide lists (pools, jobs, job schedules) hold.
type listed interface {
	id() string
	object() (Object, error)
}

// objectsByID returns the documents of the items whose account is account,
// sorted by lower-case id, with those ids, ready for pageByID. Callers hold
// s.mu; paging and filtering happen after they release it.
func objectsByID[T listed](items map[string]T, accountOf func(T) string, account string) ([]Object, []string, error) {
	var sel []T
	for _, it := range items {
		if strings.EqualFold(accountOf(it), account) {
			sel = append(sel, it)
		}
	}
	sort.Slice(sel, func(a, b int) bool { return strings.ToLower(sel[a].id()) < strings.ToLower(sel[b].id()) })
	objs := make([]Object, 0, len(sel))
	ids := make([]string, 0, len(sel))
	for _, it := range sel {
		o, err := it.object()
		if err != nil {
			return nil, nil, err
		}
		objs = append(objs, o)
		ids = append(ids, strings.ToLower(it.id()))
	}
	return objs, ids, nil
}

// pageByID pages a list of objects sorted by lower-case id; the cursor is
// the last id returned.
func pageByID(objs []Object, ids []string, lp ListParams) (ListPage, error) {
	start := 0
	if lp.Cursor != "" {
		start = sort.SearchStrings(ids, lp.Cursor)
		if start < len(ids) && ids[start] == lp.Cursor {
			start++
		}
	}
	limit := limitOf(lp)
	var page ListPage
	for i := start; i < len(objs); i++ {
		ok, err := matches(lp.Filter, objs[i].Doc)
		if err != nil {
			return ListPage{}, err
		}
		if !ok {
			continue
		}
		if len(page.Items) == limit {
			page.Next = ids[i-1]
			// ids[i-1] may have been filtered out; the cursor is still a
			// position, so paging resumes right after it.
			return page, nil
		}
		page.Items = append(page.Items, objs[i])
	}
	return page, nil
}

// TaskList lists a job's tasks in creation order, straight from the store.
// A filter on state alone is pushed down to the store's index.
func (s *Service) TaskList(ctx context.Context, account, jobID string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	_, err := s.jobLocked(account, jobID)
	s.mu.Unlock()
	if err != nil {
		return ListPage{}, err
	}
	var after int64
	if lp.Cursor != "" {
		after, err = strconv.ParseInt(lp.Cursor, 10, 64)
		if err != nil {
			return ListPage{}, batch.InvalidQuery("$skiptoken", lp.Cursor, "The continuation token is not valid.")
		}
	}
	// Equalities on state and executionInfo/result among the filter's
	// top-level "and" terms go to the store's indexes; the whole filter is
	// still evaluated unless it was exactly one such term.
	var (
		states []string
		result string
		exact  bool
	)
	if lp.Filter != nil {
		cs := lp.Filter.Conjuncts()
		for _, c := range cs {
			if vals, ok := c.EqualityOn("state"); ok && states == nil {
				for _, v := range vals {
					states = append(states, strings.ToLower(v))
				}
			} else if vals, ok := c.EqualityOn("executionInfo/result"); ok && len(vals) == 1 && result == "" {
				result = strings.ToLower(vals[0])
			}
		}
		exact = len(cs) == 1 && (states != nil || result != "")
	}
	limit := limitOf(lp)
	var page ListPage
	for {
		batchSize := limit - len(page.Items)
		if lp.Filter != nil && !exact {
			batchSize = MaxResults
		}
		recs, err := s.cfg.Store.TaskList(ctx, store.TaskListParams{Account: account, JobID: jobID, AfterSeq: after, Limit: batchSize + 1, States: states, Result: result})
		if err != nil {
			return ListPage{}, err
		}
		more := len(recs) > batchSize
		if more {
			recs = recs[:batchSize]
		}
		for _, r := range recs {
			after = r.Seq
			ok := true
			if !exact {
				if ok, err = matches(lp.Filter, r.Doc); err != nil {
					return ListPage{}, err
				}
			}
			if !ok {
				continue
			}
			page.Items = append(page.Items, Object{Doc: r.Doc})
			if len(page.Items) == limit {
				if more || r.Seq != recs[len(recs)-1].Seq {
					page.Next = strconv.FormatInt(r.Seq, 10)
				}
				return page, nil
			}
		}
		if !more {
			return page, nil
		}
	}
}
