package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/kilnbatch/kiln/internal/applications"
	"github.com/kilnbatch/kiln/internal/batch"
)

// Applications: Azure's data plane only reads them (Application_List,
// Application_Get); Azure manages them through ARM, which Kiln does not
// have, so Kiln adds management routes under /kiln/applications, behind the
// same Shared Key authentication:
//
//	PUT    /kiln/applications/{applicationId}                     create or update (JSON: displayName, defaultVersion, allowUpdates)
//	DELETE /kiln/applications/{applicationId}
//	PUT    /kiln/applications/{applicationId}/versions/{version}  upload the zip file (streamed body)
//	DELETE /kiln/applications/{applicationId}/versions/{version}

// applicationSummary is Azure's ApplicationSummary.
type applicationSummary struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Versions    []string `json:"versions"`
}

func summary(a *applications.Application) applicationSummary {
	name := a.DisplayName
	if name == "" {
		name = a.ID
	}
	return applicationSummary{ID: a.ID, DisplayName: name, Versions: a.VersionList()}
}

// applicationDoc is what the management routes answer.
type applicationDoc struct {
	ID             string                  `json:"id"`
	DisplayName    string                  `json:"displayName,omitempty"`
	DefaultVersion string                  `json:"defaultVersion,omitempty"`
	AllowUpdates   bool                    `json:"allowUpdates"`
	Versions       []*applications.Package `json:"versions"`
}

func appDoc(a *applications.Application) applicationDoc {
	d := applicationDoc{ID: a.ID, DisplayName: a.DisplayName, DefaultVersion: a.DefaultVersion, AllowUpdates: a.AllowUpdates,
		Versions: []*applications.Package{}}
	for _, v := range a.VersionList() {
		d.Versions = append(d.Versions, a.Versions[v])
	}
	return d
}

func (s *server) applicationsOrFail() (*applications.Registry, error) {
	if s.apps == nil {
		return nil, batch.Errorf(http.StatusNotImplemented, "NotImplemented", "This Kiln server has no storage, so no applications.")
	}
	return s.apps, nil
}

// applicationError maps registry errors to Azure's codes.
func applicationError(err error, id, version string) error {
	switch {
	case errors.Is(err, applications.ErrApplicationNotFound):
		return batch.Errorf(http.StatusNotFound, "ApplicationNotFound", "The specified application does not exist.").With("applicationId", id)
	case errors.Is(err, applications.ErrVersionNotFound):
		return batch.Errorf(http.StatusNotFound, "ApplicationPackageNotFound", "The specified application package does not exist.").
			With("applicationId", id).With("version", version)
	case errors.Is(err, applications.ErrInvalidName):
		return batch.InvalidProperty("applicationId", id+" "+version, err.Error())
	case errors.Is(err, applications.ErrUpdatesNotAllowed):
		return batch.Errorf(http.StatusConflict, "ApplicationPackageUpdatesNotAllowed", "The application does not allow updates of existing package versions.").
			With("applicationId", id).With("version", version)
	}
	return err
}

func (s *server) applicationList(c *call) error {
	reg, err := s.applicationsOrFail()
	if err != nil {
		return err
	}
	max, err := c.maxResults(1000)
	if err != nil {
		return err
	}
	docs := [][]byte{}
	for _, a := range reg.List(c.account) {
		if len(docs) == max {
			break
		}
		b, err := json.Marshal(summary(a))
		if err != nil {
			return err
		}
		docs = append(docs, b)
	}
	body, err := listBody(c.metadata("applications"), docs, nil, "")
	if err != nil {
		return err
	}
	return c.writeBody(body)
}

func (s *server) applicationGet(c *call) error {
	reg, err := s.applicationsOrFail()
	if err != nil {
		return err
	}
	id := c.r.PathValue("applicationId")
	a, err := reg.Get(c.account, id)
	if err != nil {
		return applicationError(err, id, "")
	}
	return c.writeValue("applications/@Element", summary(a))
}

func (s *server) applicationPut(c *call) error {
	reg, err := s.applicationsOrFail()
	if err != nil {
		return err
	}
	id := c.r.PathValue("applicationId")
	var u applications.Update
	if err := c.decodeJSON(&u); err != nil {
		return err
	}
	a, created, err := reg.Put(c.r.Context(), c.account, id, u)
	if err != nil {
		return applicationError(err, id, deref(u.DefaultVersion))
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.writeJSON(status, appDoc(a))
}

func (s *server) applicationDelete(c *call) error {
	reg, err := s.applicationsOrFail()
	if err != nil {
		return err
	}
	id := c.r.PathValue("applicationId")
	if err := reg.Delete(c.r.Context(), c.account, id); err != nil {
		return applicationError(err, id, "")
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *server) applicationVersionPut(c *call) error {
	reg, err := s.applicationsOrFail()
	if err != nil {
		return err
	}
	id, version := c.r.PathValue("applicationId"), c.r.PathValue("version")
	p, err := reg.PutVersion(c.r.Context(), c.account, id, version, c.r.Body)
	if err != nil {
		return applicationError(err, id, version)
	}
	return c.writeJSON(http.StatusCreated, p)
}

func (s *server) applicationVersionDelete(c *call) error {
	reg, err := s.applicationsOrFail()
	if err != nil {
		return err
	}
	id, version := c.r.PathValue("applicationId"), c.r.PathValue("version")
	if err := reg.DeleteVersion(c.r.Context(), c.account, id, version); err != nil {
		return applicationError(err, id, version)
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// decodeJSON reads a small JSON body (an empty one leaves v unchanged).
func (c *call) decodeJSON(v any) error {
	if c.r.ContentLength > MaxBodyBytes {
		return errBodyTooLarge()
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, MaxBodyBytes))
	if err := dec.Decode(v); err != nil && err.Error() != "EOF" {
		return batch.InvalidBody("The request body is not a valid JSON object: " + err.Error())
	}
	return nil
}

// writeJSON answers a plain JSON document (Kiln-specific routes).
func (c *call) writeJSON(status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json; odata=minimalmetadata")
	h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	c.w.WriteHeader(status)
	_, err = c.w.Write(b)
	return err
}
