package api

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/odata"
	"github.com/kilnbatch/kiln/internal/service"
)

// Paging limits of the list operations.
const (
	MaxResultsDefault    = 1000 // every list but pool node counts
	NodeCountsMaxResults = 10   // Account_ListPoolNodeCounts: 1..10, default 10
)

// q returns the value of query parameter name, matched case-insensitively
// (clients send "timeOut", "maxresults", "$filter"...).
func (c *call) q(name string) (string, bool) {
	if v, ok := c.query[name]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range c.query {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// apiVersionRE matches Batch api-versions such as 2024-07-01.20.0.
var apiVersionRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})\.(\d{1,4})\.(\d{1,4})$`)

// checkAPIVersion requires an api-version of the form YYYY-MM-DD.NN.N from
// 2018 on.
func (c *call) checkAPIVersion() error {
	v, ok := c.q("api-version")
	if !ok {
		e := batch.Errorf(http.StatusBadRequest, "MissingRequiredQueryParameter",
			"A query parameter that's mandatory for this request is not specified.")
		return e.With("QueryParameterName", "api-version")
	}
	m := apiVersionRE.FindStringSubmatch(v)
	if m == nil {
		return batch.InvalidQuery("api-version", v, "The api-version must have the form YYYY-MM-DD.NN.N, for example 2024-07-01.20.0.")
	}
	if _, err := time.Parse("2006-01-02", v[:10]); err != nil {
		return batch.InvalidQuery("api-version", v, "The api-version does not start with a valid date.")
	}
	if year, _ := strconv.Atoi(m[1]); year < 2018 {
		e := batch.Errorf(http.StatusBadRequest, "UnsupportedRequestVersion", "The specified Request Version is not supported.")
		return e.With("QueryParameterName", "api-version").With("QueryParameterValue", v).
			With("Reason", "Kiln accepts api-versions from 2018 on, for example 2024-07-01.20.0.")
	}
	c.apiVersion = v
	return nil
}

// apiBefore reports whether the request's api-version is older than date
// (YYYY-MM-DD).
func (c *call) apiBefore(date string) bool {
	return len(c.apiVersion) >= 10 && c.apiVersion[:10] < date
}

// queryError turns an odata.ParseError into 400 InvalidQueryParameterValue.
func queryError(name, value string, err error) error {
	reason := err.Error()
	var pe *odata.ParseError
	if errors.As(err, &pe) {
		reason = "Syntax error at position " + strconv.Itoa(pe.Pos) + ": " + pe.Msg
	}
	return batch.InvalidQuery(name, value, reason)
}

// selectProps parses $select (nil: all properties).
func (c *call) selectProps() ([]string, error) {
	v, ok := c.q("$select")
	if !ok {
		return nil, nil
	}
	props, err := odata.ParseSelect(v)
	if err != nil {
		return nil, queryError("$select", v, err)
	}
	return props, nil
}

// filter parses $filter (nil: match all).
func (c *call) filter() (*odata.Filter, error) {
	v, ok := c.q("$filter")
	if !ok {
		return nil, nil
	}
	f, err := odata.ParseFilter(v)
	if err != nil {
		return nil, queryError("$filter", v, err)
	}
	return f, nil
}

// maxResults parses maxresults: 1..limit, default limit.
func (c *call) maxResults(limit int) (int, error) {
	v, ok := c.q("maxresults")
	if !ok {
		return limit, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > limit {
		return 0, batch.InvalidQuery("maxresults", v, "maxresults must be an integer between 1 and "+strconv.Itoa(limit)+".")
	}
	return n, nil
}

// listParams reads $filter, $skiptoken and maxresults of a list.
func (c *call) listParams() (service.ListParams, error) {
	f, err := c.filter()
	if err != nil {
		return service.ListParams{}, err
	}
	limit, err := c.maxResults(MaxResultsDefault)
	if err != nil {
		return service.ListParams{}, err
	}
	cursor, _ := c.q("$skiptoken")
	return service.ListParams{Filter: f, Cursor: cursor, Limit: limit}, nil
}

// offset reads $skiptoken as a list index, for lists the API pages itself.
func (c *call) offset() (int, error) {
	v, ok := c.q("$skiptoken")
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, batch.InvalidQuery("$skiptoken", v, "The continuation token is not valid.")
	}
	return n, nil
}

// boolParam reads an optional boolean query parameter (recursive, force).
func (c *call) boolParam(name string) (bool, error) {
	v, ok := c.q(name)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(v)))
	if err != nil {
		return false, batch.InvalidQuery(name, v, "The value must be true or false.")
	}
	return b, nil
}

// nextLink is the absolute URL of the next page: the request's path and
// query (with its api-version) with $skiptoken set to cursor.
func (c *call) nextLink(cursor string) string {
	var parts []string
	for _, p := range strings.Split(c.r.URL.RawQuery, "&") {
		if p == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if strings.EqualFold(name, "$skiptoken") {
			continue
		}
		parts = append(parts, p)
	}
	parts = append(parts, "$skiptoken="+url.QueryEscape(cursor))
	return c.requestURL() + "?" + strings.Join(parts, "&")
}

// conditions reads the If-* headers.
func (c *call) conditions() (service.Conditions, error) {
	cond := service.Conditions{
		IfMatch:     strings.TrimSpace(header(c.r, "If-Match")),
		IfNoneMatch: strings.TrimSpace(header(c.r, "If-None-Match")),
	}
	var err error
	if cond.IfModifiedSince, err = dateHeader(c.r, "If-Modified-Since"); err != nil {
		return cond, err
	}
	if cond.IfUnmodifiedSince, err = dateHeader(c.r, "If-Unmodified-Since"); err != nil {
		return cond, err
	}
	return cond, nil
}

// dateHeader parses an optional RFC 1123 date header.
func dateHeader(r *http.Request, name string) (time.Time, error) {
	v := strings.TrimSpace(header(r, name))
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := http.ParseTime(v); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	e := batch.Errorf(http.StatusBadRequest, "InvalidHeaderValue",
		"The value for one of the HTTP headers is not in the correct format.")
	return time.Time{}, e.With("HeaderName", name).With("HeaderValue", v)
}
