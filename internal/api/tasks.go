package api

import (
	"net/http"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/service"
)

// MaxTasksPerCollection is the most tasks one addtaskcollection may carry.
const MaxTasksPerCollection = 100

// Task operations (task files are in files.go).

func (c *call) taskURL(taskID string) string {
	return c.resourceURL("jobs", c.r.PathValue("jobId"), "tasks", taskID)
}

func (s *server) taskAdd(c *call) error {
	var in azbatch.CreateTaskContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	o, err := s.ops.TaskAdd(c.r.Context(), c.account, c.r.PathValue("jobId"), &in)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	return c.created(c.taskURL(deref(in.ID)))
}

// taskAddCollection adds 1..100 tasks; each gets its own result, so the
// answer is 200 even when some failed. More than 100 tasks answer 413
// RequestBodyTooLarge, the code clients react to by sending fewer tasks.
func (s *server) taskAddCollection(c *call) error {
	var in azbatch.TaskGroup
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	switch n := len(in.Value); {
	case in.Value == nil:
		return batch.MissingProperty("value")
	case n == 0:
		return batch.InvalidProperty("value", "[]", "The collection must contain between 1 and 100 tasks.")
	case n > MaxTasksPerCollection:
		e := batch.Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
			"The number of tasks in the collection exceeds the maximum permissible limit.")
		return e.With("MaxLimit", strconv.Itoa(MaxTasksPerCollection)).With("TaskCount", strconv.Itoa(n))
	}
	results, err := s.ops.TaskAddCollection(c.r.Context(), c.account, c.r.PathValue("jobId"), in.Value)
	if err != nil {
		return err
	}
	if results == nil {
		results = []azbatch.TaskAddResult{}
	}
	return c.writeValue("taskaddresult", struct {
		Value []azbatch.TaskAddResult `json:"value"`
	}{results})
}

func (s *server) taskGet(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := s.ops.TaskGet(c.r.Context(), c.account, c.r.PathValue("jobId"), c.r.PathValue("taskId"), cond)
	if err != nil {
		return err
	}
	return c.writeDoc("tasks/@Element", o)
}

func (s *server) taskList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.TaskList(c.r.Context(), c.account, c.r.PathValue("jobId"), p)
	if err != nil {
		return err
	}
	return c.writeList("tasks", page)
}

func (s *server) taskUpdate(c *call) error {
	var in azbatch.Task
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	jobID, taskID := c.r.PathValue("jobId"), c.r.PathValue("taskId")
	return c.objectWrite(http.StatusOK, c.taskURL(taskID), func(cond service.Conditions) (service.Object, error) {
		return s.ops.TaskReplace(c.r.Context(), c.account, jobID, taskID, &in, cond)
	})
}

func (s *server) taskDelete(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	if err := s.ops.TaskDelete(c.r.Context(), c.account, c.r.PathValue("jobId"), c.r.PathValue("taskId"), cond); err != nil {
		return err
	}
	return c.noContent(http.StatusOK, "")
}

func (s *server) taskTerminate(c *call) error {
	jobID, taskID := c.r.PathValue("jobId"), c.r.PathValue("taskId")
	return c.objectWrite(http.StatusNoContent, c.taskURL(taskID), func(cond service.Conditions) (service.Object, error) {
		return s.ops.TaskTerminate(c.r.Context(), c.account, jobID, taskID, cond)
	})
}

func (s *server) taskReactivate(c *call) error {
	jobID, taskID := c.r.PathValue("jobId"), c.r.PathValue("taskId")
	return c.objectWrite(http.StatusNoContent, c.taskURL(taskID), func(cond service.Conditions) (service.Object, error) {
		return s.ops.TaskReactivate(c.r.Context(), c.account, jobID, taskID, cond)
	})
}
