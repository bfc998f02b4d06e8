package api

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// Certificates. Add and List have ordinary routes; Get, Delete and
// CancelDeletion address a certificate as
// /certificates(thumbprintAlgorithm=sha1,thumbprint=...), which the mux
// cannot match, so s.fallback hands them to certificateByThumbprint.

func (s *server) certificateRoutes(h func(string, func(*call) error)) {
	h("POST /certificates", s.certificateAdd)
	h("GET /certificates", s.certificateList)
}

func (s *server) certificateAdd(c *call) error {
	var in azbatch.Certificate
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	if err := s.ops.CertificateAdd(c.r.Context(), c.account, &in); err != nil {
		return err
	}
	tp := strings.ToLower(strings.ReplaceAll(deref(in.Thumbprint), " ", ""))
	return c.created(c.baseURL() + "/certificates(thumbprintAlgorithm=sha1,thumbprint=" + tp + ")")
}

func (s *server) certificateList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.CertificateList(c.r.Context(), c.account, p)
	if err != nil {
		return err
	}
	return c.writeList("certificates", page)
}

var certificatePath = regexp.MustCompile(`^/certificates\(thumbprintAlgorithm=([^,()/]*),thumbprint=([^,()/]*)\)(/canceldelete)?$`)

// certificateByThumbprint serves Certificate_Get, Certificate_Delete and
// Certificate_CancelDeletion.
func (s *server) certificateByThumbprint(c *call) error {
	m := certificatePath.FindStringSubmatch(c.r.URL.Path)
	if m == nil {
		e := batch.Errorf(http.StatusBadRequest, "InvalidUri", "The requested URI does not represent any resource on the server.")
		return e.With("Path", c.r.URL.EscapedPath())
	}
	alg, tp, cancel := m[1], m[2], m[3] != ""
	ctx := c.r.Context()
	switch {
	case cancel && c.r.Method == http.MethodPost:
		if err := s.ops.CertificateCancelDeletion(ctx, c.account, alg, tp); err != nil {
			return err
		}
		return c.noContent(http.StatusNoContent, c.requestURL())
	case !cancel && (c.r.Method == http.MethodGet || c.r.Method == http.MethodHead):
		o, err := s.ops.CertificateGet(ctx, c.account, alg, tp)
		if err != nil {
			return err
		}
		return c.writeDoc("certificates/@Element", o)
	case !cancel && c.r.Method == http.MethodDelete:
		if err := s.ops.CertificateDelete(ctx, c.account, alg, tp); err != nil {
			return err
		}
		return c.noContent(http.StatusAccepted, c.requestURL())
	}
	allowed := "GET, DELETE"
	if cancel {
		allowed = "POST"
	}
	c.w.Header().Set("Allow", allowed)
	e := batch.Errorf(http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
	return e.With("HttpVerb", c.r.Method)
}
