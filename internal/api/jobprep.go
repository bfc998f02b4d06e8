package api

// Job preparation and release task status, and the subtasks of a
// multi-instance task.

// jobPrepReleaseStatus is Job_ListPreparationAndReleaseTaskStatus:
// $filter, $select, maxresults and paging like every list.
func (s *server) jobPrepReleaseStatus(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.JobPrepReleaseStatus(c.r.Context(), c.account, c.r.PathValue("jobId"), p)
	if err != nil {
		return err
	}
	return c.writeList("jobpreparationandreleasetaskstatuslist", page)
}

// taskSubtasks is Task_ListSubtasks: one page, $select only, as in Azure.
func (s *server) taskSubtasks(c *call) error {
	page, err := s.ops.TaskSubtasks(c.r.Context(), c.account, c.r.PathValue("jobId"), c.r.PathValue("taskId"))
	if err != nil {
		return err
	}
	return c.writeList("subtaskinfos", page)
}
