package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sample is one point of /ui/history: the account's running tasks and its
// nodes by state (Azure's node state values, as in a node's state:
// "idle", "starttaskfailed"...; dedicated and low-priority together).
type Sample struct {
	Time         time.Time      `json:"time"`
	RunningTasks int            `json:"runningTasks"`
	Nodes        map[string]int `json:"nodes"`
}

// history keeps each account's samples of the last window, in memory.
type history struct {
	window time.Duration
	mu     sync.Mutex
	m      map[string][]Sample
}

func newHistory(window time.Duration) *history {
	return &history{window: window, m: map[string][]Sample{}}
}

func (hi *history) add(account string, s Sample) {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	l := append(hi.m[account], s)
	i := 0
	for i < len(l) && s.Time.Sub(l[i].Time) > hi.window {
		i++
	}
	hi.m[account] = append([]Sample(nil), l[i:]...)
}

func (hi *history) get(account string) []Sample {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	cut := time.Now().Add(-hi.window)
	out := []Sample{}
	for _, s := range hi.m[account] {
		if s.Time.After(cut) {
			out = append(out, s)
		}
	}
	return out
}

func (h *Handler) historyGet(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"samples":         h.history.get(s.account),
		"intervalSeconds": h.cfg.HistoryInterval.Seconds(),
	})
}

// sample records every account's sample now and then every
// HistoryInterval until Close.
func (h *Handler) sample() {
	defer close(h.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.stop
		cancel()
	}()
	t := time.NewTicker(h.cfg.HistoryInterval)
	defer t.Stop()
	for {
		h.sampleAll(ctx)
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
	}
}

func (h *Handler) sampleAll(ctx context.Context) {
	var accounts []string
	if h.cfg.Accounts != nil {
		accounts = h.cfg.Accounts()
	}
	seen := map[string]bool{}
	for _, a := range accounts {
		seen[strings.ToLower(a)] = true
	}
	for _, a := range h.sessions.accounts() {
		if !seen[a] {
			accounts = append(accounts, a)
			seen[a] = true
		}
	}
	sort.Strings(accounts)
	for _, a := range accounts {
		if ctx.Err() != nil {
			return
		}
		keys, ok := h.cfg.Keys(a)
		if !ok || len(keys) == 0 {
			continue
		}
		s, err := h.sampleAccount(ctx, strings.ToLower(a), keys[0])
		if err != nil {
			if ctx.Err() == nil {
				h.cfg.Logger.Debug("dashboard history sample", "account", a, "err", err)
			}
			continue
		}
		h.history.add(strings.ToLower(a), s)
	}
}

type sampleErr string

func (e sampleErr) Error() string { return string(e) }

// list reads every page of a list call, returning the items.
func (h *Handler) list(ctx context.Context, account string, key []byte, path string, q url.Values) ([]json.RawMessage, error) {
	var items []json.RawMessage
	for pages := 0; pages < 10000; pages++ {
		rec := h.call(ctx, account, key, http.MethodGet, path, q, nil)
		if rec.code != http.StatusOK {
			return nil, sampleErr(path + ": " + azureMessage(rec))
		}
		var page struct {
			Value []json.RawMessage `json:"value"`
			Next  string            `json:"odata.nextLink"`
		}
		if err := json.Unmarshal(rec.buf.Bytes(), &page); err != nil {
			return nil, err
		}
		items = append(items, page.Value...)
		if page.Next == "" {
			return items, nil
		}
		u, err := url.Parse(page.Next)
		if err != nil {
			return nil, err
		}
		path, q = u.EscapedPath(), u.Query()
	}
	return items, nil
}

func (h *Handler) sampleAccount(ctx context.Context, account string, key []byte) (Sample, error) {
	s := Sample{Time: time.Now().UTC(), Nodes: map[string]int{}}
	counts, err := h.list(ctx, account, key, "/nodecounts", nil)
	if err != nil {
		return s, err
	}
	for _, raw := range counts {
		var pc struct {
			Dedicated   map[string]any `json:"dedicated"`
			LowPriority map[string]any `json:"lowPriority"`
		}
		if json.Unmarshal(raw, &pc) != nil {
			continue
		}
		for _, m := range []map[string]any{pc.Dedicated, pc.LowPriority} {
			for state, v := range m {
				n, ok := v.(float64)
				if !ok || state == "total" || n == 0 {
					continue
				}
				s.Nodes[strings.ToLower(state)] += int(n) // the node state: startTaskFailed counts starttaskfailed nodes
			}
		}
	}
	jobs, err := h.list(ctx, account, key, "/jobs", url.Values{"$filter": {"state eq 'active'"}, "$select": {"id"}})
	if err != nil {
		return s, err
	}
	for _, raw := range jobs {
		var j struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &j) != nil || j.ID == "" {
			continue
		}
		rec := h.call(ctx, account, key, http.MethodGet, "/jobs/"+url.PathEscape(j.ID)+"/taskcounts", nil, nil)
		if rec.code != http.StatusOK {
			continue // deleted meanwhile
		}
		var tc struct {
			TaskCounts struct {
				Running int `json:"running"`
			} `json:"taskCounts"`
		}
		if json.Unmarshal(rec.buf.Bytes(), &tc) == nil {
			s.RunningTasks += tc.TaskCounts.Running
		}
	}
	return s, nil
}
