package api

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/service"
)

// Job operations.

func (s *server) jobAdd(c *call) error {
	var in azbatch.CreateJobContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	o, err := s.ops.JobAdd(c.r.Context(), c.account, &in)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	return c.created(c.resourceURL("jobs", deref(in.ID)))
}

func (s *server) jobGet(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := s.ops.JobGet(c.r.Context(), c.account, c.r.PathValue("jobId"), cond)
	if err != nil {
		return err
	}
	return c.writeDoc("jobs/@Element", o)
}

func (s *server) jobList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.JobList(c.r.Context(), c.account, p)
	if err != nil {
		return err
	}
	return c.writeList("jobs", page)
}

func (s *server) jobDelete(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	if _, err := c.boolParam("force"); err != nil {
		return err
	}
	if err := s.ops.JobDelete(c.r.Context(), c.account, c.r.PathValue("jobId"), cond); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, "")
}

func (s *server) jobPatch(c *call) error {
	var in azbatch.UpdateJobContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("jobId")
	return c.objectWrite(http.StatusOK, c.resourceURL("jobs", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobPatch(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) jobUpdate(c *call) error {
	var in azbatch.Job
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("jobId")
	return c.objectWrite(http.StatusOK, c.resourceURL("jobs", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobReplace(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) jobDisable(c *call) error {
	var in azbatch.DisableJobContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("jobId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("jobs", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobDisable(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) jobEnable(c *call) error {
	id := c.r.PathValue("jobId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("jobs", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobEnable(c.r.Context(), c.account, id, cond)
	})
}

func (s *server) jobTerminate(c *call) error {
	var in azbatch.TerminateJobContent
	if err := c.decodeBody(&in, false); err != nil {
		return err
	}
	if _, err := c.boolParam("force"); err != nil {
		return err
	}
	id := c.r.PathValue("jobId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("jobs", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobTerminate(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) jobTaskCounts(c *call) error {
	counts, err := s.ops.JobTaskCounts(c.r.Context(), c.account, c.r.PathValue("jobId"))
	if err != nil {
		return err
	}
	return c.writeValue("taskcounts/@Element", counts)
}
