package service

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// Certificates (Certificate_Add, List, Get, Delete, CancelDeletion),
// deprecated by Azure but still called by clients. A certificate is
// installed on the nodes of the pools that reference it when they join the
// pool or are reimaged, into the node's certs directory (the agent sets
// AZ_BATCH_CERTIFICATES_DIR). Deleting a certificate that a pool references
// or a node has installed fails: the certificate goes to deletefailed until
// it is deleted again or its deletion is cancelled.

// certMaxData is Azure's limit on a certificate's data: "The maximum size
// is 10KB."
const certMaxData = 10 * 1024

// certState is one certificate in memory.
type certState struct {
	account string
	doc     *azbatch.Certificate // the wire document (no data or password)
	format  azbatch.CertificateFormat
	data    string // base64, as added
	pass    string
}

// certRecord is what the store keeps of a certificate.
type certRecord struct {
	Doc      json.RawMessage `json:"doc"`
	Format   string          `json:"format"`
	Data     string          `json:"data"`
	Password string          `json:"password,omitempty"`
}

// certificates holds the account's certificates. Writers hold s.mu and
// mu; pool validation reads under mu alone.
type certificates struct {
	mu    sync.Mutex
	byKey map[string]*certState // certKey
}

func certKey(account, alg, thumbprint string) string {
	return key(account, strings.ToLower(alg)+"-"+strings.ToLower(thumbprint))
}

// normalizeThumbprint removes spaces ("it may include spaces but these
// are removed") and lower-cases the hex digits.
func normalizeThumbprint(t string) string {
	return strings.ToLower(strings.ReplaceAll(t, " ", ""))
}

func (c *certState) record() (store.Certificate, error) {
	doc, err := c.doc.MarshalJSON()
	if err != nil {
		return store.Certificate{}, err
	}
	b, err := json.Marshal(certRecord{Doc: doc, Format: string(c.format), Data: c.data, Password: c.pass})
	return store.Certificate{Account: c.account, ThumbprintAlgorithm: deref(c.doc.ThumbprintAlgorithm), Thumbprint: deref(c.doc.Thumbprint), Doc: b}, err
}

func (s *Service) writeCertLocked(c *certState, w *store.Writes) {
	rec, err := c.record()
	if err != nil {
		s.log.Error("encode certificate", "err", err)
		return
	}
	w.Certificates = append(w.Certificates, rec)
}

// loadCertificates reads the certificates at start.
func (s *Service) loadCertificates(ctx context.Context) error {
	recs, err := s.cfg.Store.CertificateList(ctx)
	if err != nil {
		return err
	}
	s.certs.byKey = map[string]*certState{}
	for _, rec := range recs {
		var r certRecord
		if err := json.Unmarshal(rec.Doc, &r); err != nil {
			return fmt.Errorf("load certificate %s: %w", rec.Thumbprint, err)
		}
		doc := &azbatch.Certificate{}
		if err := doc.UnmarshalJSON(r.Doc); err != nil {
			return fmt.Errorf("load certificate %s: %w", rec.Thumbprint, err)
		}
		s.certs.byKey[certKey(rec.Account, rec.ThumbprintAlgorithm, rec.Thumbprint)] = &certState{
			account: rec.Account, doc: doc, format: azbatch.CertificateFormat(r.Format), data: r.Data, pass: r.Password,
		}
	}
	return nil
}

// CertificateAdd adds a certificate to the account.
func (s *Service) CertificateAdd(ctx context.Context, account string, c *azbatch.Certificate) error {
	if c == nil {
		return batch.InvalidBody("")
	}
	alg := deref(c.ThumbprintAlgorithm)
	if alg == "" {
		return batch.MissingProperty("thumbprintAlgorithm")
	}
	if !strings.EqualFold(alg, "sha1") {
		return batch.InvalidProperty("thumbprintAlgorithm", alg, "The thumbprint algorithm must be sha1.")
	}
	tp := normalizeThumbprint(deref(c.Thumbprint))
	if tp == "" {
		return batch.MissingProperty("thumbprint")
	}
	if _, err := hex.DecodeString(tp); err != nil || len(tp) > 40 {
		return batch.InvalidProperty("thumbprint", deref(c.Thumbprint), "The thumbprint is a sequence of up to 40 hex digits.")
	}
	if deref(c.Data) == "" {
		return batch.MissingProperty("data")
	}
	raw, err := base64.StdEncoding.DecodeString(deref(c.Data))
	if err != nil {
		return batch.InvalidProperty("data", "", "The data is not valid base64.")
	}
	if len(raw) > certMaxData {
		return batch.InvalidProperty("data", "", "The maximum size of a certificate is 10KB.")
	}
	format := azbatch.CertificateFormatPFX
	if c.Format != nil {
		format = azbatch.CertificateFormat(strings.ToLower(string(*c.Format)))
	}
	var public *string
	switch format {
	case azbatch.CertificateFormatCER:
		if deref(c.Password) != "" {
			return batch.InvalidProperty("password", "******", "A password must be omitted for a certificate in cer format.")
		}
		der, err := certDER(raw)
		if err != nil {
			return batch.InvalidProperty("data", "", "The data is not an X.509 certificate: "+err.Error())
		}
		sum := sha1.Sum(der)
		if hex.EncodeToString(sum[:]) != tp {
			return batch.InvalidProperty("thumbprint", deref(c.Thumbprint), "The thumbprint does not match the certificate's SHA-1 thumbprint.")
		}
		public = ptr(base64.StdEncoding.EncodeToString(der))
	case azbatch.CertificateFormatPFX:
		// Kept as given: nodes get the PFX file and its password.
	default:
		return batch.InvalidProperty("certificateFormat", string(*c.Format), "Allowed values are pfx and cer.")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	k := certKey(account, alg, tp)
	if _, ok := s.certs.byKey[k]; ok {
		return batch.Conflict("CertificateExists", "The specified certificate already exists.").With("thumbprint", tp)
	}
	now := s.now()
	cs := &certState{account: account, format: format, data: deref(c.Data), pass: deref(c.Password), doc: &azbatch.Certificate{
		Thumbprint:          ptr(tp),
		ThumbprintAlgorithm: ptr("sha1"),
		URL:                 ptr(s.cfg.AccountURL(account) + "/certificates(thumbprintAlgorithm=sha1,thumbprint=" + tp + ")"),
		State:               ptr(azbatch.CertificateStateActive),
		StateTransitionTime: &now,
		PublicData:          public,
	}}
	var w store.Writes
	s.writeCertLocked(cs, &w)
	if err := s.commit(ctx, &w); err != nil {
		return err
	}
	if s.certs.byKey == nil {
		s.certs.byKey = map[string]*certState{}
	}
	s.certs.byKey[k] = cs
	return nil
}

// certDER returns the DER bytes of a cer certificate's data (DER, or PEM).
func certDER(raw []byte) ([]byte, error) {
	if b, _ := pem.Decode(raw); b != nil {
		raw = b.Bytes
	}
	if _, err := x509.ParseCertificate(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func (s *Service) certLocked(account, alg, thumbprint string) (*certState, error) {
	c, ok := s.certs.byKey[certKey(account, alg, normalizeThumbprint(thumbprint))]
	if !ok {
		return nil, batch.NotFound("CertificateNotFound", "certificate", thumbprint)
	}
	return c, nil
}

// CertificateGet returns one certificate.
func (s *Service) CertificateGet(ctx context.Context, account, alg, thumbprint string) (Object, error) {
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	c, err := s.certLocked(account, alg, thumbprint)
	if err != nil {
		return Object{}, err
	}
	return object(c.doc, nil, c.doc.StateTransitionTime, nil)
}

// CertificateList lists the account's certificates by thumbprint.
func (s *Service) CertificateList(ctx context.Context, account string, lp ListParams) (ListPage, error) {
	s.certs.mu.Lock()
	var certs []*certState
	for _, c := range s.certs.byKey {
		if c.account == account {
			certs = append(certs, c)
		}
	}
	sort.Slice(certs, func(i, j int) bool { return deref(certs[i].doc.Thumbprint) < deref(certs[j].doc.Thumbprint) })
	objs := make([]Object, 0, len(certs))
	ids := make([]string, 0, len(certs))
	for _, c := range certs {
		o, err := object(c.doc, nil, c.doc.StateTransitionTime, nil)
		if err != nil {
			s.certs.mu.Unlock()
			return ListPage{}, err
		}
		objs = append(objs, o)
		ids = append(ids, deref(c.doc.Thumbprint))
	}
	s.certs.mu.Unlock()
	return pageByID(objs, ids, lp)
}

// setCertStateLocked moves a certificate to state st.
func (s *Service) setCertStateLocked(c *certState, st azbatch.CertificateState) {
	now := s.now()
	c.doc.PreviousState, c.doc.PreviousStateTransitionTime = c.doc.State, c.doc.StateTransitionTime
	c.doc.State, c.doc.StateTransitionTime = &st, &now
}

// CertificateDelete deletes a certificate no pool references and no node
// has installed; otherwise the certificate goes to deletefailed with the
// pools and nodes that use it.
func (s *Service) CertificateDelete(ctx context.Context, account, alg, thumbprint string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	c, err := s.certLocked(account, alg, thumbprint)
	if err != nil {
		return err
	}
	if deref(c.doc.State) == azbatch.CertificateStateDeleting {
		return batch.Conflict("CertificateBeingDeleted", "The specified certificate is being deleted.").With("thumbprint", deref(c.doc.Thumbprint))
	}
	s.setCertStateLocked(c, azbatch.CertificateStateDeleting)
	users := s.certUsersLocked(c)
	var w store.Writes
	if len(users) == 0 {
		delete(s.certs.byKey, certKey(account, alg, deref(c.doc.Thumbprint)))
		rec, _ := c.record()
		w.DeleteCertificates = append(w.DeleteCertificates, rec)
		return s.commit(ctx, &w)
	}
	s.setCertStateLocked(c, azbatch.CertificateStateDeleteFailed)
	c.doc.DeleteCertificateError = &azbatch.DeleteCertificateError{
		Code:    ptr("CertificateStateDeleteFailed"),
		Message: ptr("The certificate is in use by pools or compute nodes and cannot be deleted."),
		Values:  users,
	}
	s.writeCertLocked(c, &w)
	return s.commit(ctx, &w)
}

// certUsersLocked lists the pools that reference a certificate and the
// nodes that have it installed (about the first hundred, as Azure's).
func (s *Service) certUsersLocked(c *certState) []azbatch.NameValuePair {
	var out []azbatch.NameValuePair
	tp := deref(c.doc.Thumbprint)
	var pools []*poolState
	for _, p := range s.pools {
		if p.account == c.account {
			pools = append(pools, p)
		}
	}
	sort.Slice(pools, func(i, j int) bool { return pools[i].id() < pools[j].id() })
	for _, p := range pools {
		if refersTo(p.doc.CertificateReferences, tp) {
			out = append(out, azbatch.NameValuePair{Name: ptr("PoolId"), Value: ptr(p.id())})
		}
		ids := make([]string, 0, len(p.nodes))
		for id, n := range p.nodes {
			if refersTo(n.doc.CertificateReferences, tp) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			out = append(out, azbatch.NameValuePair{Name: ptr("ComputeNodeId"), Value: ptr(id)})
		}
		if len(out) >= 100 {
			return out[:100]
		}
	}
	return out
}

func refersTo(refs []azbatch.CertificateReference, thumbprint string) bool {
	for _, r := range refs {
		if normalizeThumbprint(deref(r.Thumbprint)) == thumbprint {
			return true
		}
	}
	return false
}

// CertificateCancelDeletion brings a certificate whose deletion failed
// back to active.
func (s *Service) CertificateCancelDeletion(ctx context.Context, account, alg, thumbprint string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	c, err := s.certLocked(account, alg, thumbprint)
	if err != nil {
		return err
	}
	switch deref(c.doc.State) {
	case azbatch.CertificateStateActive:
		return batch.Conflict("CertificateStateActive", "The certificate is active: there is no deletion to cancel.").With("thumbprint", deref(c.doc.Thumbprint))
	case azbatch.CertificateStateDeleting:
		return batch.Conflict("CertificateBeingDeleted", "The specified certificate is being deleted.").With("thumbprint", deref(c.doc.Thumbprint))
	}
	s.setCertStateLocked(c, azbatch.CertificateStateActive)
	c.doc.DeleteCertificateError = nil
	var w store.Writes
	s.writeCertLocked(c, &w)
	return s.commit(ctx, &w)
}

// validateCertificateRefs fails like Azure when a pool references a
// certificate the account does not have (409 InvalidCertificateReferences)
// or one being deleted.
func (s *Service) validateCertificateRefs(account string, refs []azbatch.CertificateReference) error {
	if len(refs) == 0 {
		return nil
	}
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	for i, r := range refs {
		alg := deref(r.ThumbprintAlgorithm)
		if alg == "" {
			alg = "sha1"
		}
		c, ok := s.certs.byKey[certKey(account, alg, normalizeThumbprint(deref(r.Thumbprint)))]
		if !ok {
			return batch.Errorf(http.StatusConflict, "InvalidCertificateReferences",
				"One or more of the specified certificate references are invalid.").
				With(fmt.Sprintf("certificateReferences[%d].thumbprint", i), deref(r.Thumbprint))
		}
		if st := deref(c.doc.State); st == azbatch.CertificateStateDeleting {
			return batch.Conflict("CertificateBeingDeleted", "The specified certificate is being deleted.").With("thumbprint", deref(r.Thumbprint))
		}
	}
	return nil
}

// nodeCertificatesLocked returns the certificate files for a node of pool
// p (what the agent installs) and records them as the node's installed
// certificateReferences.
func (s *Service) nodeCertificatesLocked(n *nodeState) []protocol.Certificate {
	refs := n.pool.doc.CertificateReferences
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	var out []protocol.Certificate
	var installed []azbatch.CertificateReference
	for _, r := range refs {
		alg := deref(r.ThumbprintAlgorithm)
		if alg == "" {
			alg = "sha1"
		}
		c, ok := s.certs.byKey[certKey(n.account, alg, normalizeThumbprint(deref(r.Thumbprint)))]
		if !ok {
			continue
		}
		out = append(out, protocol.Certificate{
			ThumbprintAlgorithm: "sha1", Thumbprint: deref(c.doc.Thumbprint),
			Format: string(c.format), Data: c.data, Password: c.pass,
		})
		installed = append(installed, r)
	}
	n.doc.CertificateReferences = installed
	return out
}
