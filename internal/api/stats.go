package api

import (
	"bytes"
	"strings"
)

// Statistics: $expand=stats on jobs and tasks, and the account's lifetime
// statistics.
//
// The service keeps a job's and a task's statistics in their documents;
// Azure shows them only when $expand asks for "stats", so every other
// answer leaves the "stats" member out.

// lifetimeJobStats answers Job_GetAllLifetimeStatistics (GET
// /lifetimejobstats, api-versions before 2024-07-01 have it).
func (s *server) lifetimeJobStats(c *call) error {
	st, err := s.ops.LifetimeJobStats(c.r.Context(), c.account)
	if err != nil {
		return err
	}
	return c.writeValue("jobstats/@Element", st)
}

// lifetimePoolStats answers Pool_GetAllLifetimeStatistics (GET
// /lifetimepoolstats).
func (s *server) lifetimePoolStats(c *call) error {
	st, err := s.ops.LifetimePoolStats(c.r.Context(), c.account)
	if err != nil {
		return err
	}
	return c.writeValue("poolstats/@Element", st)
}

// expandsStats reports whether the request's $expand names "stats" (a
// comma-separated list, as the SDKs send it).
func (c *call) expandsStats() bool {
	v, ok := c.q("$expand")
	if !ok {
		return false
	}
	for _, p := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(p), "stats") {
			return true
		}
	}
	return false
}

// unexpanded returns doc as the request should see it: without its "stats"
// member unless $expand asked for it.
func (c *call) unexpanded(doc []byte, expand bool) []byte {
	if expand {
		return doc
	}
	return dropMember(doc, "stats")
}

// dropMember returns the JSON object doc without its top-level member
// name, leaving the rest byte for byte. A document that does not parse as
// expected is returned unchanged. It scans instead of decoding: lists run
// it on every document of a page.
func dropMember(doc []byte, name string) []byte {
	if !bytes.Contains(doc, []byte(`"`+name+`"`)) {
		return doc
	}
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return doc
	}
	i++
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return doc
		}
		start := i
		keyEnd := skipString(doc, i)
		if keyEnd < 0 {
			return doc
		}
		key := doc[i+1 : keyEnd-1]
		j := skipSpace(doc, keyEnd)
		if j >= len(doc) || doc[j] != ':' {
			return doc
		}
		end := skipValue(doc, skipSpace(doc, j+1))
		if end < 0 {
			return doc
		}
		next := skipSpace(doc, end)
		if next >= len(doc) {
			return doc
		}
		if string(key) == name {
			out := make([]byte, 0, len(doc))
			if doc[next] == ',' {
				// Not the last member: drop it with the comma after it.
				out = append(out, doc[:start]...)
				return append(out, doc[skipSpace(doc, next+1):]...)
			}
			// The last member: drop the comma before it, if any.
			p := start - 1
			for p > 0 && isSpace(doc[p]) {
				p--
			}
			if doc[p] == ',' {
				out = append(out, doc[:p]...)
			} else {
				out = append(out, doc[:start]...)
			}
			return append(out, doc[next:]...)
		}
		if doc[next] != ',' {
			return doc
		}
		i = next + 1
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i]
// (a quote), or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				e := skipString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
