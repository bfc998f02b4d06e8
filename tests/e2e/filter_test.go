package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestFilterJobList covers List Jobs with $filter, $select and paging.
func TestFilterJobList(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client
	var all []string
	for i := range 10 {
		id := fmt.Sprintf("j%02d", i)
		all = append(all, id)
		s.CreateJob(t, id, "nopool", func(cj *azbatch.CreateJobContent) { cj.Priority = to(int32(i * 10)) })
	}
	for _, id := range []string{"j01", "j03", "j05"} {
		if _, err := c.TerminateJob(ctx(t), id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DisableJob(ctx(t), "j07", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionRequeue)}, nil); err != nil {
		t.Fatal(err)
	}

	jobs, pages := jobListPages(t, s, nil)
	if ids := jobIDs(jobs); !slices.Equal(ids, all) || len(pages) != 1 {
		t.Fatalf("list all: %v in pages %v", ids, pages)
	}

	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"state eq 'active'", []string{"j00", "j02", "j04", "j06", "j08", "j09"}},
		{"state eq 'completed'", []string{"j01", "j03", "j05"}},
		{"state eq 'disabled'", []string{"j07"}},
		{"state eq 'completed' or state eq 'disabled'", []string{"j01", "j03", "j05", "j07"}},
		{"executionInfo/terminateReason eq 'UserTerminate'", []string{"j01", "j03", "j05"}},
		{"priority ge 50", []string{"j05", "j06", "j07", "j08", "j09"}},
		{"startswith(id,'j0') and priority lt 30", []string{"j00", "j01", "j02"}},
		{"state eq 'active' and not (priority gt 20)", []string{"j00", "j02"}},
		{"id eq 'nosuchjob'", nil},
	} {
		jobs, _ := jobListPages(t, s, &azbatch.ListJobsOptions{Filter: to(tc.filter)})
		if ids := jobIDs(jobs); !slices.Equal(ids, tc.want) {
			t.Errorf("$filter=%s: %v, want %v", tc.filter, ids, tc.want)
		}
	}

	// Timestamps compare as instants.
	j04 := jobGet(t, s, "j04")
	since := j04.CreationTime.UTC().Format(time.RFC3339Nano)
	jobs, _ = jobListPages(t, s, &azbatch.ListJobsOptions{Filter: to("creationTime gt datetime'" + since + "'")})
	if ids := jobIDs(jobs); !slices.Equal(ids, all[5:]) {
		t.Errorf("creationTime gt datetime'%s': %v", since, ids)
	}
	jobs, _ = jobListPages(t, s, &azbatch.ListJobsOptions{Filter: to("id eq 'J04'")})
	if ids := jobIDs(jobs); !slices.Equal(ids, []string{"j04"}) {
		t.Errorf("id eq 'J04' (ids are case-insensitive): %v", ids)
	}

	// $select returns only the named properties.
	jobs, _ = jobListPages(t, s, &azbatch.ListJobsOptions{SelectParam: []string{"id", "state"}, Filter: to("state eq 'active'")})
	if len(jobs) != 6 {
		t.Fatalf("$select with $filter: %d jobs", len(jobs))
	}
	for _, j := range jobs {
		if j.ID == nil || j.State == nil || j.PoolInfo != nil || j.ETag != nil || j.Priority != nil || j.URL != nil || j.ExecutionInfo != nil || j.CreationTime != nil {
			t.Fatalf("$select=id,state returned %+v", j)
		}
	}
	one, err := c.GetJob(ctx(t), "j02", &azbatch.GetJobOptions{SelectParam: []string{"id", "priority"}})
	if err != nil {
		t.Fatal(err)
	}
	if *one.ID != "j02" || *one.Priority != 20 || one.State != nil || one.PoolInfo != nil {
		t.Fatalf("get job with $select=id,priority: %+v", one.Job)
	}

	// Paging: maxresults pages, and the SDK follows odata.nextLink.
	jobs, pages = jobListPages(t, s, &azbatch.ListJobsOptions{MaxResults: to(int32(3))})
	if ids := jobIDs(jobs); !slices.Equal(ids, all) || !slices.Equal(pages, []int{3, 3, 3, 1}) {
		t.Fatalf("maxresults 3: %v in pages %v", ids, pages)
	}
	jobs, pages = jobListPages(t, s, &azbatch.ListJobsOptions{MaxResults: to(int32(4)), Filter: to("state eq 'active'"), SelectParam: []string{"id"}})
	if ids := jobIDs(jobs); !slices.Equal(ids, []string{"j00", "j02", "j04", "j06", "j08", "j09"}) || pages[0] != 4 || len(pages) > 3 {
		t.Fatalf("maxresults 4 with $filter: %v in pages %v", ids, pages)
	}
	jobs, pages = jobListPages(t, s, &azbatch.ListJobsOptions{MaxResults: to(int32(1000))})
	if len(jobs) != 10 || len(pages) != 1 {
		t.Fatalf("maxresults 1000: %d jobs in pages %v", len(jobs), pages)
	}
}

// TestFilterTaskList covers List Tasks: paging over 30 tasks, $filter on
// state, executionInfo and ids, and $select.
func TestFilterTaskList(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	s.CreateJob(t, "list", jobPool, nil)
	var tasks []azbatch.CreateTaskContent
	var all []string
	for i := range 30 {
		id := fmt.Sprintf("list-%02d", i)
		all = append(all, id)
		tasks = append(tasks, taskCmd(id, fmt.Sprintf("/bin/sh -c 'exit %d'", i%3)))
	}
	s.AddTasks(t, "list", tasks)
	s.CreateJob(t, "waiting", "nopool", nil)
	s.AddTasks(t, "waiting", tasks[:5])
	s.WaitJobTasks(t, "list", 60*time.Second)

	listed, pages := taskListPages(t, s, "list", nil)
	if ids := taskIDs(listed); !slices.Equal(ids, all) || len(pages) != 1 {
		t.Fatalf("list all: %v in pages %v", ids, pages)
	}
	listed, pages = taskListPages(t, s, "list", &azbatch.ListTasksOptions{MaxResults: to(int32(7))})
	if ids := taskIDs(listed); !slices.Equal(ids, all) || !slices.Equal(pages, []int{7, 7, 7, 7, 2}) {
		t.Fatalf("maxresults 7: %v in pages %v", ids, pages)
	}

	every := func(step, from int) []string {
		var out []string
		for i := from; i < 30; i += step {
			out = append(out, all[i])
		}
		return out
	}
	for _, tc := range []struct {
		filter string
		job    string
		want   []string
	}{
		{"state eq 'completed'", "list", all},
		{"state eq 'active'", "list", nil},
		{"state eq 'active'", "waiting", all[:5]},
		{"state eq 'running' or state eq 'completed'", "list", all},
		{"executionInfo/exitCode eq 2", "list", every(3, 2)},
		{"executionInfo/exitCode gt 0", "list", func() []string {
			var out []string
			for i, id := range all {
				if i%3 != 0 {
					out = append(out, id)
				}
			}
			return out
		}()},
		{"executionInfo/result eq 'success'", "list", every(3, 0)},
		{"state eq 'completed' and executionInfo/exitCode eq 1", "list", every(3, 1)},
		{"startswith(id,'list-1')", "list", all[10:20]},
		{"startswith(id,'list-2') and executionInfo/exitCode eq 0", "list", []string{"list-21", "list-24", "list-27"}},
	} {
		got, _ := taskListPages(t, s, tc.job, &azbatch.ListTasksOptions{Filter: to(tc.filter)})
		if ids := taskIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("%s $filter=%s: %v, want %v", tc.job, tc.filter, ids, tc.want)
		}
		// The same filter, paged by 3.
		got, pages := taskListPages(t, s, tc.job, &azbatch.ListTasksOptions{Filter: to(tc.filter), MaxResults: to(int32(3))})
		if ids := taskIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("%s $filter=%s maxresults 3: %v, want %v", tc.job, tc.filter, ids, tc.want)
		}
		for _, n := range pages {
			if n > 3 {
				t.Errorf("%s $filter=%s: a page of %d with maxresults 3", tc.job, tc.filter, n)
			}
		}
	}

	// $select=id,state returns only those.
	got, pages := taskListPages(t, s, "list", &azbatch.ListTasksOptions{SelectParam: []string{"id", "state"}, MaxResults: to(int32(7))})
	if len(got) != 30 || len(pages) != 5 {
		t.Fatalf("$select: %d tasks in pages %v", len(got), pages)
	}
	for _, tk := range got {
		if tk.ID == nil || *tk.State != azbatch.TaskStateCompleted || tk.CommandLine != nil || tk.ExecutionInfo != nil || tk.URL != nil || tk.ETag != nil || tk.NodeInfo != nil || tk.Constraints != nil {
			t.Fatalf("$select=id,state returned %+v", tk)
		}
	}
	// $filter may name properties $select leaves out.
	got, _ = taskListPages(t, s, "list", &azbatch.ListTasksOptions{SelectParam: []string{"id"}, Filter: to("executionInfo/exitCode eq 1")})
	if ids := taskIDs(got); !slices.Equal(ids, every(3, 1)) || got[0].ExecutionInfo != nil {
		t.Fatalf("$select=id with $filter on exitCode: %v", ids)
	}
	one, err := s.Client.GetTask(ctx(t), "list", "list-04", &azbatch.GetTaskOptions{SelectParam: []string{"id", "executionInfo"}})
	if err != nil {
		t.Fatal(err)
	}
	if *one.ID != "list-04" || *one.ExecutionInfo.ExitCode != 1 || one.State != nil || one.CommandLine != nil {
		t.Fatalf("get task with $select: %+v", one.Task)
	}
}

// TestODataErrors: malformed $filter or $select and out-of-range
// maxresults answer 400 InvalidQueryParameterValue.
func TestODataErrors(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client
	s.CreateJob(t, "odata", "nopool", nil)
	taskAdd(t, s, "odata", taskCmd("t", "true"))

	listJobs := func(o *azbatch.ListJobsOptions) error {
		_, err := c.NewListJobsPager(o).NextPage(ctx(t))
		return err
	}
	listTasks := func(o *azbatch.ListTasksOptions) error {
		_, err := c.NewListTasksPager("odata", o).NextPage(ctx(t))
		return err
	}
	listFiles := func(o *azbatch.ListTaskFilesOptions) error {
		_, err := c.NewListTaskFilesPager("odata", "t", o).NextPage(ctx(t))
		return err
	}
	badFilters := []string{"state eq", "state eq 'active' and", "(state eq 'active'", "nosuchfunction(id,'a')", "state === 'active'", "id eq 'unterminated"}
	for _, f := range badFilters {
		v := jobAzureError(t, listJobs(&azbatch.ListJobsOptions{Filter: to(f)}), http.StatusBadRequest, "InvalidQueryParameterValue")
		if v["QueryParameterName"] != "$filter" || v["QueryParameterValue"] != f || v["Reason"] == "" {
			t.Errorf("jobs $filter=%s: values %v", f, v)
		}
		jobAzureError(t, listTasks(&azbatch.ListTasksOptions{Filter: to(f)}), http.StatusBadRequest, "InvalidQueryParameterValue")
		jobAzureError(t, listFiles(&azbatch.ListTaskFilesOptions{Filter: to(f)}), http.StatusBadRequest, "InvalidQueryParameterValue")
	}
	for _, n := range []int32{0, -1, 1001, 2000} {
		v := jobAzureError(t, listJobs(&azbatch.ListJobsOptions{MaxResults: to(n)}), http.StatusBadRequest, "InvalidQueryParameterValue")
		if v["QueryParameterName"] != "maxresults" || v["QueryParameterValue"] != fmt.Sprint(n) {
			t.Errorf("jobs maxresults %d: values %v", n, v)
		}
		jobAzureError(t, listTasks(&azbatch.ListTasksOptions{MaxResults: to(n)}), http.StatusBadRequest, "InvalidQueryParameterValue")
		jobAzureError(t, listFiles(&azbatch.ListTaskFilesOptions{MaxResults: to(n)}), http.StatusBadRequest, "InvalidQueryParameterValue")
	}
	v := jobAzureError(t, listTasks(&azbatch.ListTasksOptions{SelectParam: []string{"id", "", "state"}}), http.StatusBadRequest, "InvalidQueryParameterValue")
	if v["QueryParameterName"] != "$select" {
		t.Errorf("$select values %v", v)
	}
	_, err := c.GetJob(ctx(t), "odata", &azbatch.GetJobOptions{SelectParam: []string{"id", "bad name"}})
	jobAzureError(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
	// Valid edge values pass.
	if err := listJobs(&azbatch.ListJobsOptions{MaxResults: to(int32(1)), Filter: to("state eq 'active'")}); err != nil {
		t.Fatal(err)
	}
	if err := listTasks(&azbatch.ListTasksOptions{MaxResults: to(int32(1000))}); err != nil {
		t.Fatal(err)
	}
}
