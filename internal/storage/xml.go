package storage

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// The XML documents of the Azure Blob Storage protocol that Kiln writes and
// reads, shaped as the azblob SDK's generated models parse them.

// xmlError is Azure Storage's error body.
type xmlError struct {
	XMLName xml.Name `xml:"Error"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
}

// containerList is the answer of List Containers.
type containerList struct {
	XMLName         xml.Name        `xml:"EnumerationResults"`
	ServiceEndpoint string          `xml:"ServiceEndpoint,attr"`
	Prefix          string          `xml:"Prefix,omitempty"`
	Marker          string          `xml:"Marker,omitempty"`
	MaxResults      int             `xml:"MaxResults,omitempty"`
	Containers      []containerItem `xml:"Containers>Container"`
	NextMarker      string          `xml:"NextMarker"`
}

type containerItem struct {
	Name       string              `xml:"Name"`
	Properties containerProperties `xml:"Properties"`
	Metadata   *struct{}           `xml:"Metadata"`
}

type containerProperties struct {
	LastModified          string `xml:"Last-Modified"`
	ETag                  string `xml:"Etag"`
	LeaseStatus           string `xml:"LeaseStatus"`
	LeaseState            string `xml:"LeaseState"`
	HasImmutabilityPolicy bool   `xml:"HasImmutabilityPolicy"`
	HasLegalHold          bool   `xml:"HasLegalHold"`
}

// blobList is the answer of List Blobs, flat or with a delimiter.
type blobList struct {
	XMLName         xml.Name `xml:"EnumerationResults"`
	ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
	ContainerName   string   `xml:"ContainerName,attr"`
	Prefix          string   `xml:"Prefix,omitempty"`
	Marker          string   `xml:"Marker,omitempty"`
	MaxResults      int      `xml:"MaxResults,omitempty"`
	Delimiter       string   `xml:"Delimiter,omitempty"`
	// Blobs holds <Blob> then <BlobPrefix> entries; azblob reads them
	// into two lists, so their interleaving does not matter.
	Blobs      blobEntries `xml:"Blobs"`
	NextMarker string      `xml:"NextMarker"`
}

type blobEntries struct {
	Blobs    []blobItem   `xml:"Blob"`
	Prefixes []blobPrefix `xml:"BlobPrefix"`
}

type blobPrefix struct {
	Name string `xml:"Name"`
}

type blobItem struct {
	Name       string         `xml:"Name"`
	Properties blobProperties `xml:"Properties"`
	Metadata   *xmlMetadata   `xml:"Metadata"`
}

type blobProperties struct {
	CreationTime       string `xml:"Creation-Time"`
	LastModified       string `xml:"Last-Modified"`
	ETag               string `xml:"Etag"`
	ContentLength      int64  `xml:"Content-Length"`
	ContentType        string `xml:"Content-Type"`
	ContentEncoding    string `xml:"Content-Encoding"`
	ContentLanguage    string `xml:"Content-Language"`
	ContentMD5         string `xml:"Content-MD5"`
	ContentDisposition string `xml:"Content-Disposition"`
	CacheControl       string `xml:"Cache-Control"`
	BlobType           string `xml:"BlobType"`
	AccessTier         string `xml:"AccessTier"`
	AccessTierInferred bool   `xml:"AccessTierInferred"`
	LeaseStatus        string `xml:"LeaseStatus"`
	LeaseState         string `xml:"LeaseState"`
	ServerEncrypted    bool   `xml:"ServerEncrypted"`
}

// xmlMetadata writes a metadata map as <name>value</name> elements, sorted.
type xmlMetadata map[string]string

func (m xmlMetadata) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := e.EncodeElement(m[k], xml.StartElement{Name: xml.Name{Local: k}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// httpTime formats a time as Azure does in headers and XML (RFC 1123, GMT).
func httpTime(t time.Time) string {
	return t.UTC().Format(http.TimeFormat)
}

// newBlobItem describes a blob for List Blobs.
func newBlobItem(b BlobInfo, withMetadata bool) blobItem {
	it := blobItem{
		Name: b.Name,
		Properties: blobProperties{
			CreationTime:       httpTime(b.CreationTime),
			LastModified:       httpTime(b.LastModified),
			ETag:               b.ETag,
			ContentLength:      b.Size,
			ContentType:        b.ContentType,
			ContentEncoding:    b.ContentEncoding,
			ContentLanguage:    b.ContentLanguage,
			ContentDisposition: b.ContentDisposition,
			CacheControl:       b.CacheControl,
			BlobType:           "BlockBlob",
			AccessTier:         "Hot",
			AccessTierInferred: true,
			LeaseStatus:        "unlocked",
			LeaseState:         "available",
		},
	}
	if len(b.ContentMD5) > 0 {
		it.Properties.ContentMD5 = base64.StdEncoding.EncodeToString(b.ContentMD5)
	}
	if withMetadata {
		md := xmlMetadata(b.Metadata)
		if md == nil {
			md = xmlMetadata{}
		}
		it.Metadata = &md
	}
	return it
}

// maxBlockListBytes bounds a Put Block List body: 50,000 ids of 64 bytes
// in base64 with their tags are about 6 MB.
const maxBlockListBytes = 16 << 20

// errCommittedBlocks: Kiln does not keep the blocks of committed blobs.
var errCommittedBlocks = fmt.Errorf("%w: Kiln storage does not keep the blocks of committed blobs; stage every block again (<Committed> is not supported)", ErrInvalidBlockList)

// parseBlockList reads a Put Block List body:
//
//	<BlockList><Latest>id</Latest><Uncommitted>id</Uncommitted>...</BlockList>
//
// and returns the ids in order. Latest and Uncommitted both name staged
// blocks, the only kind Kiln keeps.
func parseBlockList(r io.Reader) ([]string, error) {
	dec := xml.NewDecoder(r)
	var ids []string
	depth := 0
	root := false
	var cur *strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidBlockList, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local != "BlockList":
				return nil, fmt.Errorf("%w: the root element is <%s>, not <BlockList>", ErrInvalidBlockList, t.Name.Local)
			case depth == 1:
				root = true
			case depth == 2 && (t.Name.Local == "Latest" || t.Name.Local == "Uncommitted"):
				cur = &strings.Builder{}
			case depth == 2 && t.Name.Local == "Committed":
				return nil, errCommittedBlocks
			case depth >= 2:
				return nil, fmt.Errorf("%w: unexpected element <%s>", ErrInvalidBlockList, t.Name.Local)
			}
		case xml.CharData:
			if cur != nil {
				cur.Write(t)
			}
		case xml.EndElement:
			if depth == 2 && cur != nil {
				ids = append(ids, strings.TrimSpace(cur.String()))
				cur = nil
				if len(ids) > MaxBlocks {
					return nil, fmt.Errorf("%w: more than %d blocks", ErrInvalidBlockList, MaxBlocks)
				}
			}
			depth--
		}
	}
	if depth != 0 || !root {
		return nil, fmt.Errorf("%w: the body is not a complete <BlockList>", ErrInvalidBlockList)
	}
	return ids, nil
}
