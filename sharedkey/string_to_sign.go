// Package sharedkey implements Azure Batch Shared Key authentication: building
// the canonical string to sign, signing outgoing requests (for net/http and for
// azcore pipelines) and verifying incoming ones.
//
// The Authorization header has the form
//
//	Authorization: SharedKey <account>:<base64(HMAC-SHA256(key, utf8(StringToSign)))>
//
// where StringToSign is
//
//	VERB\n
//	Content-Encoding\n Content-Language\n Content-Length\n Content-MD5\n Content-Type\n
//	Date\n If-Modified-Since\n If-Match\n If-None-Match\n If-Unmodified-Since\n Range\n
//	ocp-*: every header whose name starts with "ocp-", lowercased and sorted, as "name:value\n"
//	/<account><escaped path>
//	\n<lowercased query name>:<decoded values, sorted, comma-joined>   (per name, sorted by name)
//
// The Date line is empty when an ocp-date header is present.
package sharedkey

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The standard headers of the string to sign, in order.
var fixedHeaders = [...]string{
	"Content-Encoding",
	"Content-Language",
	"Content-Length",
	"Content-Md5",
	"Content-Type",
	"Date",
	"If-Modified-Since",
	"If-Match",
	"If-None-Match",
	"If-Unmodified-Since",
	"Range",
}

const (
	idxContentLength = 2
	idxDate          = 5
)

// fixedIndex returns the position of header name k in fixedHeaders, compared
// case-insensitively, or -1.
func fixedIndex(k string) int {
	switch len(k) {
	case 4:
		if strings.EqualFold(k, "Date") {
			return idxDate
		}
	case 5:
		if strings.EqualFold(k, "Range") {
			return 10
		}
	case 8:
		if strings.EqualFold(k, "If-Match") {
			return 7
		}
	case 11:
		if strings.EqualFold(k, "Content-Md5") {
			return 3
		}
	case 12:
		if strings.EqualFold(k, "Content-Type") {
			return 4
		}
	case 13:
		if strings.EqualFold(k, "If-None-Match") {
			return 8
		}
	case 14:
		if strings.EqualFold(k, "Content-Length") {
			return idxContentLength
		}
	case 16:
		if strings.EqualFold(k, "Content-Encoding") {
			return 0
		}
		if strings.EqualFold(k, "Content-Language") {
			return 1
		}
	case 17:
		if strings.EqualFold(k, "If-Modified-Since") {
			return 6
		}
	case 19:
		if strings.EqualFold(k, "If-Unmodified-Since") {
			return 9
		}
	}
	return -1
}

func hasOCPPrefix(k string) bool {
	return len(k) >= 4 && strings.EqualFold(k[:4], "ocp-")
}

// headerEntry is one header key of the request, kept with its original
// spelling so that keys differing only in case are merged deterministically.
type headerEntry struct {
	name string // lowercased name (ocp- headers) or "" (fixed headers)
	idx  int    // index into fixedHeaders, or -1
	key  string // key as found in http.Header
	vals []string
}

func entryLess(a, b headerEntry) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if a.idx != b.idx {
		return a.idx - b.idx
	}
	return strings.Compare(a.key, b.key)
}

// queryParam is one decoded query parameter.
type queryParam struct {
	name  string // decoded, as sent
	lname string // decoded, lowercased
	value string // decoded
}

// canonical holds the parts of a request that go into the string to sign,
// extracted once so that each tolerated variant is only a rebuild.
type canonical struct {
	method string
	fixed  [len(fixedHeaders)]string
	ocp    string // "name:value\n" lines, sorted
	// date is the value used for freshness: ocp-date if present, else Date.
	date     string
	hasDate  bool
	path     string       // r.URL.EscapedPath(), "/" when empty
	rawPath  string       // path as it appeared in RequestURI, when different from path
	params   []queryParam // sorted by (lname, value): the canonical order
	hasEmpty bool         // some parameter has an empty value
	hasUpper bool         // some parameter name is not lowercase
}

func joinValues(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	return strings.Join(vals, ",")
}

// extract fills c from r without touching its body.
func (c *canonical) extract(r *http.Request) {
	*c = canonical{method: r.Method}

	var (
		fixedBuf [8]headerEntry
		ocpBuf   [4]headerEntry
		fixed    = fixedBuf[:0]
		ocp      = ocpBuf[:0]
	)
	for k, vs := range r.Header {
		if hasOCPPrefix(k) {
			ocp = append(ocp, headerEntry{name: strings.ToLower(k), idx: -1, key: k, vals: vs})
		} else if i := fixedIndex(k); i >= 0 {
			fixed = append(fixed, headerEntry{idx: i, key: k, vals: vs})
		}
	}
	if len(fixed) > 1 {
		slices.SortFunc(fixed, entryLess)
	}
	for i, e := range fixed {
		v := joinValues(e.vals)
		if i > 0 && fixed[i-1].idx == e.idx {
			c.fixed[e.idx] += "," + v
		} else {
			c.fixed[e.idx] = v
		}
	}

	if len(ocp) > 0 {
		if len(ocp) > 1 {
			slices.SortFunc(ocp, entryLess)
		}
		var b strings.Builder
		n := 0
		for _, e := range ocp {
			n += len(e.name) + 2
			for _, v := range e.vals {
				n += len(v) + 1
			}
		}
		b.Grow(n)
		for i, e := range ocp {
			v := joinValues(e.vals)
			if i > 0 && ocp[i-1].name == e.name {
				// Same name in another case: continue the previous line.
				b.WriteByte(',')
				b.WriteString(v)
				continue
			}
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(e.name)
			b.WriteByte(':')
			b.WriteString(v)
			if e.name == "ocp-date" && !c.hasDate {
				c.date, c.hasDate = v, true
			}
		}
		b.WriteByte('\n')
		c.ocp = b.String()
	}
	if c.hasDate {
		// With ocp-date the Date line is empty.
		c.fixed[idxDate] = ""
	} else if d := c.fixed[idxDate]; d != "" {
		c.date, c.hasDate = d, true
	}

	if c.fixed[idxContentLength] == "" {
		c.fixed[idxContentLength] = wireContentLength(r)
	}

	c.path = r.URL.EscapedPath()
	if c.path == "" {
		c.path = "/"
	}
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		if p != c.path {
			c.rawPath = p
		}
	}

	c.params = parseQuery(r.URL.RawQuery)
	for _, p := range c.params {
		if p.value == "" {
			c.hasEmpty = true
		}
		if p.lname != p.name {
			c.hasUpper = true
		}
	}
}

// wireContentLength is the Content-Length of r when no header carries it:
// the known length of a body, or "0" for an outgoing POST, PUT or PATCH with
// no body, which is what net/http sends on the wire for them.
func wireContentLength(r *http.Request) string {
	if r.ContentLength > 0 {
		return strconv.FormatInt(r.ContentLength, 10)
	}
	if r.RequestURI == "" && r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			return "0"
		}
	}
	return ""
}

// parseQuery splits a raw query into decoded parameters sorted by
// (lowercased name, value). Unlike url.ParseQuery it never drops a parameter:
// a malformed escape keeps its raw text, and ';' is not a separator.
func parseQuery(raw string) []queryParam {
	if raw == "" {
		return nil
	}
	params := make([]queryParam, 0, strings.Count(raw, "&")+1)
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		name, value = unescape(name), unescape(value)
		params = append(params, queryParam{name: name, lname: strings.ToLower(name), value: value})
	}
	if len(params) > 1 {
		slices.SortFunc(params, func(a, b queryParam) int {
			if c := strings.Compare(a.lname, b.lname); c != 0 {
				return c
			}
			return strings.Compare(a.value, b.value)
		})
	}
	return params
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// variant selects one of the tolerated ways a client may have built its
// string to sign. The zero value is the canonical form.
type variant uint8

const (
	// Content-Length "0" and empty are swapped (zero-length bodies only).
	varContentLength variant = 1 << iota
	// The account name is lowercased in the canonical resource.
	varLowerAccount
	// Query parameters with empty values are left out.
	varDropEmpty
	// Query names keep their case and are sorted as given.
	varNamesAsGiven
	// The path is taken verbatim from the request line.
	varRawPath
	numVariants = 1 << iota
)

// variantOrder lists every combination, fewest deviations first.
var variantOrder = func() []variant {
	vs := make([]variant, 0, numVariants)
	for bits := 0; bits <= 5; bits++ {
		for v := variant(0); v < numVariants; v++ {
			n := 0
			for x := v; x != 0; x &= x - 1 {
				n++
			}
			if n == bits {
				vs = append(vs, v)
			}
		}
	}
	return vs
}()

// applicable returns the variants that would change the string to sign for c
// and account.
func (c *canonical) applicable(account string) variant {
	var a variant
	if cl := c.fixed[idxContentLength]; cl == "" || cl == "0" {
		a |= varContentLength
	}
	if strings.ToLower(account) != account {
		a |= varLowerAccount
	}
	if c.hasEmpty {
		a |= varDropEmpty
	}
	if c.hasUpper {
		a |= varNamesAsGiven
	}
	if c.rawPath != "" {
		a |= varRawPath
	}
	return a
}

// appendTo appends the string to sign for variant v to buf.
func (c *canonical) appendTo(buf []byte, account string, v variant) []byte {
	buf = append(buf, c.method...)
	buf = append(buf, '\n')
	for i, h := range c.fixed {
		if i == idxContentLength && v&varContentLength != 0 {
			if h == "" {
				h = "0"
			} else {
				h = ""
			}
		}
		buf = append(buf, h...)
		buf = append(buf, '\n')
	}
	buf = append(buf, c.ocp...)

	buf = append(buf, '/')
	if v&varLowerAccount != 0 {
		account = strings.ToLower(account)
	}
	buf = append(buf, account...)
	if v&varRawPath != 0 && c.rawPath != "" {
		buf = append(buf, c.rawPath...)
	} else {
		buf = append(buf, c.path...)
	}

	params := c.params
	asGiven := v&varNamesAsGiven != 0
	if asGiven && len(params) > 1 {
		params = slices.Clone(params)
		slices.SortFunc(params, func(a, b queryParam) int {
			if c := strings.Compare(a.name, b.name); c != 0 {
				return c
			}
			return strings.Compare(a.value, b.value)
		})
	}
	dropEmpty := v&varDropEmpty != 0
	prev, open := "", false
	for _, p := range params {
		if dropEmpty && p.value == "" {
			continue
		}
		name := p.lname
		if asGiven {
			name = p.name
		}
		if open && name == prev {
			buf = append(buf, ',')
			buf = append(buf, p.value...)
			continue
		}
		buf = append(buf, '\n')
		buf = append(buf, name...)
		buf = append(buf, ':')
		buf = append(buf, p.value...)
		prev, open = name, true
	}
	return buf
}

// StringToSign builds Azure Batch's canonical string for r, for the given
// account name as it appears in the resource.
//
// Headers are looked up case-insensitively. Content-Length comes from the
// header, else from r.ContentLength when positive; an outgoing request
// (RequestURI empty) using POST, PUT or PATCH with no body signs "0", as
// net/http sends "Content-Length: 0" for it. The path is r.URL.EscapedPath();
// query names are decoded and lowercased, values decoded ('+' is a space),
// several values of one name sorted and comma-joined.
func StringToSign(r *http.Request, account string) string {
	var c canonical
	c.extract(r)
	return string(c.appendTo(nil, account, 0))
}
