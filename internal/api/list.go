package api

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/kilnbatch/kiln/internal/service"
)

// writeList answers one page of a list: odata.metadata, the documents
// (filtered by $select) and odata.nextLink when the page is not the last.
func (c *call) writeList(fragment string, page service.ListPage) error {
	sel, err := c.selectProps()
	if err != nil {
		return err
	}
	docs := make([][]byte, len(page.Items))
	expand := c.expandsStats()
	for i, o := range page.Items {
		docs[i] = c.unexpanded(o.Doc, expand)
	}
	next := ""
	if page.Next != "" {
		next = c.nextLink(page.Next)
	}
	body, err := listBody(c.metadata(fragment), docs, sel, next)
	if err != nil {
		return err
	}
	return c.writeBody(body)
}

// listBody builds {"odata.metadata":..., "value":[...], "odata.nextLink":...}.
func listBody(metadata string, docs [][]byte, sel []string, next string) ([]byte, error) {
	n := len(metadata) + len(next) + 64
	for _, d := range docs {
		n += len(d) + 1
	}
	var b bytes.Buffer
	b.Grow(n)
	b.WriteString(`{"odata.metadata":`)
	writeJSONString(&b, metadata)
	b.WriteString(`,"value":[`)
	for i, d := range docs {
		if i > 0 {
			b.WriteByte(',')
		}
		inner, err := members(d, sel)
		if err != nil {
			return nil, err
		}
		b.WriteByte('{')
		b.Write(inner)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if next != "" {
		b.WriteString(`,"odata.nextLink":`)
		writeJSONString(&b, next)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// pageValues answers a list that the API pages itself (supported images,
// pool node counts): each value is marshalled, matched against $filter and
// the page is chosen by maxresults and an index $skiptoken.
func pageValues[T any](c *call, fragment string, values []T, limit int) error {
	f, err := c.filter()
	if err != nil {
		return err
	}
	n, err := c.maxResults(limit)
	if err != nil {
		return err
	}
	offset, err := c.offset()
	if err != nil {
		return err
	}
	var docs [][]byte
	for _, v := range values {
		doc, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if f != nil {
			var m map[string]any
			d := json.NewDecoder(bytes.NewReader(doc))
			d.UseNumber()
			if err := d.Decode(&m); err != nil {
				return err
			}
			if !f.Match(m) {
				continue
			}
		}
		docs = append(docs, doc)
	}
	page, next := pageSlice(docs, offset, n)
	link := ""
	if next >= 0 {
		link = c.nextLink(strconv.Itoa(next))
	}
	body, err := listBody(c.metadata(fragment), page, nil, link)
	if err != nil {
		return err
	}
	return c.writeBody(body)
}

// pageSlice returns items[offset:offset+n] and the offset of the next
// page, or -1 when this page is the last.
func pageSlice[T any](items []T, offset, n int) ([]T, int) {
	if offset >= len(items) {
		return nil, -1
	}
	end := offset + n
	if end >= len(items) {
		return items[offset:], -1
	}
	return items[offset:end], end
}
