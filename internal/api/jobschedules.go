package api

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/service"
)

// Job schedule operations, with the statuses Azure answers: 201 for add,
// 202 for delete and terminate, 204 for disable and enable, 200 for the
// rest.

func (s *server) jobScheduleAdd(c *call) error {
	var in azbatch.CreateJobScheduleContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	o, err := s.ops.JobScheduleAdd(c.r.Context(), c.account, &in)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	return c.created(c.resourceURL("jobschedules", deref(in.ID)))
}

func (s *server) jobScheduleGet(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := s.ops.JobScheduleGet(c.r.Context(), c.account, c.r.PathValue("jobScheduleId"), cond)
	if err != nil {
		return err
	}
	return c.writeDoc("jobschedules/@Element", o)
}

// jobScheduleExists answers HEAD /jobschedules/{id}: 200 or 404, no body.
func (s *server) jobScheduleExists(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := s.ops.JobScheduleGet(c.r.Context(), c.account, c.r.PathValue("jobScheduleId"), cond)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *server) jobScheduleList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.JobScheduleList(c.r.Context(), c.account, p)
	if err != nil {
		return err
	}
	return c.writeList("jobschedules", page)
}

func (s *server) jobScheduleJobList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.JobListFromSchedule(c.r.Context(), c.account, c.r.PathValue("jobScheduleId"), p)
	if err != nil {
		return err
	}
	return c.writeList("jobs", page)
}

func (s *server) jobScheduleDelete(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	if _, err := c.boolParam("force"); err != nil {
		return err
	}
	if err := s.ops.JobScheduleDelete(c.r.Context(), c.account, c.r.PathValue("jobScheduleId"), cond); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, "")
}

func (s *server) jobSchedulePatch(c *call) error {
	var in azbatch.UpdateJobScheduleContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("jobScheduleId")
	return c.objectWrite(http.StatusOK, c.resourceURL("jobschedules", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobSchedulePatch(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) jobScheduleUpdate(c *call) error {
	var in azbatch.JobSchedule
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("jobScheduleId")
	return c.objectWrite(http.StatusOK, c.resourceURL("jobschedules", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobScheduleReplace(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) jobScheduleDisable(c *call) error {
	id := c.r.PathValue("jobScheduleId")
	return c.objectWrite(http.StatusNoContent, c.resourceURL("jobschedules", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobScheduleDisable(c.r.Context(), c.account, id, cond)
	})
}

func (s *server) jobScheduleEnable(c *call) error {
	id := c.r.PathValue("jobScheduleId")
	return c.objectWrite(http.StatusNoContent, c.resourceURL("jobschedules", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobScheduleEnable(c.r.Context(), c.account, id, cond)
	})
}

func (s *server) jobScheduleTerminate(c *call) error {
	if _, err := c.boolParam("force"); err != nil {
		return err
	}
	id := c.r.PathValue("jobScheduleId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("jobschedules", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.JobScheduleTerminate(c.r.Context(), c.account, id, cond)
	})
}
