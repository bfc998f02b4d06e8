package service

import (
	"context"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// JobPrepReleaseStatus is Job_ListPreparationAndReleaseTaskStatus: per
// node that ran the job's preparation task, its status and that of the
// release task, in node id order. A job without a preparation task answers
// 409 JobPreparationTaskNotSpecified. Azure also lists nodes removed from
// the pool since; Kiln keeps these statuses in the node's record, so they
// leave with the node.
func (s *Service) JobPrepReleaseStatus(ctx context.Context, account, jobID string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	j, err := s.jobLocked(account, jobID)
	if err != nil {
		s.mu.Unlock()
		return ListPage{}, err
	}
	if j.doc.JobPreparationTask == nil {
		s.mu.Unlock()
		return ListPage{}, batch.Conflict("JobPreparationTaskNotSpecified", "The specified job does not have a job preparation task.").With("jobId", jobID)
	}
	k := key(j.account, j.id())
	var nodes []*nodeState
	for _, n := range s.nodes {
		if np := n.preps[k]; np != nil && (np.prep != nil || np.release != nil) {
			nodes = append(nodes, n)
		}
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].id < nodes[b].id })
	objs := make([]Object, 0, len(nodes))
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		np := n.preps[k]
		st := azbatch.JobPreparationAndReleaseTaskStatus{
			PoolID:                          ptr(n.pool.id()),
			NodeID:                          ptr(n.id),
			NodeURL:                         n.doc.URL,
			JobPreparationTaskExecutionInfo: np.prep,
			JobReleaseTaskExecutionInfo:     np.release,
		}
		b, err := st.MarshalJSON()
		if err != nil {
			s.mu.Unlock()
			return ListPage{}, err
		}
		objs = append(objs, Object{Doc: b})
		ids = append(ids, strings.ToLower(n.id))
	}
	s.mu.Unlock()
	return pageByID(objs, ids, lp)
}
