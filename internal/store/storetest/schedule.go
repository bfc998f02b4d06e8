package storetest

import (
	"bytes"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func schedule(account, id string) store.JobSchedule {
	return store.JobSchedule{Account: account, ID: id, State: "active", Doc: doc("schedule", account, id)}
}

func scheduleID(js store.JobSchedule) string { return js.ID }

func requireSchedule(t *testing.T, got, want store.JobSchedule) {
	t.Helper()
	if got.Account != want.Account || got.ID != want.ID || got.State != want.State || !bytes.Equal(got.Doc, want.Doc) {
		t.Fatalf("job schedule = %+v, want %+v", got, want)
	}
}

func testJobSchedule(t *testing.T, setup setupFunc) {
	t.Run("InsertGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := schedule("acct", "Sched1")
		want.State = "disabled"
		requireNoError(t, b.s.JobScheduleInsert(b.ctx, want))

		got, err := b.s.JobScheduleGet(b.ctx, "acct", "Sched1")
		requireNoError(t, err)
		requireSchedule(t, got, want)

		// Case-insensitive lookup, case-preserving result.
		got, err = b.s.JobScheduleGet(b.ctx, "ACCT", "SCHED1")
		requireNoError(t, err)
		requireSchedule(t, got, want)
	})

	t.Run("ErrExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.JobScheduleInsert(b.ctx, schedule("acct", "sched1")))
		requireErrorIs(t, b.s.JobScheduleInsert(b.ctx, schedule("acct", "sched1")), store.ErrExists)
		requireErrorIs(t, b.s.JobScheduleInsert(b.ctx, schedule("acct", "SCHED1")), store.ErrExists)

		got, err := b.s.JobScheduleGet(b.ctx, "acct", "sched1")
		requireNoError(t, err)
		requireSchedule(t, got, schedule("acct", "sched1"))

		// A job with the schedule's id is another table: the service, not
		// the store, keeps job and schedule ids apart.
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "sched1")))
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.JobScheduleInsert(b.ctx, schedule("acct", "sched1")))
		_, err := b.s.JobScheduleGet(b.ctx, "acct", "missing")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.JobScheduleGet(b.ctx, "other", "sched1")
		requireErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.JobScheduleList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(empty list)", len(got), 0)

		for _, id := range []string{"sched-b", "sched-c", "sched-a"} {
			requireNoError(t, b.s.JobScheduleInsert(b.ctx, schedule("acct", id)))
		}
		requireNoError(t, b.s.JobScheduleInsert(b.ctx, schedule("other", "sched-d")))
		got, err = b.s.JobScheduleList(b.ctx, "acct")
		requireNoError(t, err)
		requireIDs(t, "schedules", got, scheduleID, "sched-a", "sched-b", "sched-c")
		requireSchedule(t, got[0], schedule("acct", "sched-a"))
	})

	t.Run("ApplyUpsertDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		js := schedule("acct", "sched1")
		j := job("acct", "sched1:job-1")
		// A schedule and the job it creates commit together.
		b.apply(t, &store.Writes{JobSchedules: []store.JobSchedule{js}, Jobs: []store.Job{j}})
		got, err := b.s.JobScheduleGet(b.ctx, "acct", "sched1")
		requireNoError(t, err)
		requireSchedule(t, got, js)
		_, err = b.s.JobGet(b.ctx, "acct", "sched1:job-1")
		requireNoError(t, err)

		// An upsert replaces state and document, and the id's case.
		js.ID, js.State, js.Doc = "SCHED1", "completed", []byte(`{"v":2}`)
		b.apply(t, &store.Writes{JobSchedules: []store.JobSchedule{js}})
		got, err = b.s.JobScheduleGet(b.ctx, "acct", "sched1")
		requireNoError(t, err)
		requireSchedule(t, got, js)
		list, err := b.s.JobScheduleList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(schedules)", len(list), 1)

		// A delete removes the schedule alone; deleting a missing one is
		// not an error.
		b.apply(t, &store.Writes{DeleteJobSchedules: []store.JobSchedule{{Account: "ACCT", ID: "sched1"}, {Account: "acct", ID: "missing"}}})
		_, err = b.s.JobScheduleGet(b.ctx, "acct", "sched1")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.JobGet(b.ctx, "acct", "sched1:job-1")
		requireNoError(t, err)

		// Deletes come before upserts in one Writes.
		b.apply(t, &store.Writes{
			DeleteJobSchedules: []store.JobSchedule{{Account: "acct", ID: "sched2"}},
			JobSchedules:       []store.JobSchedule{schedule("acct", "sched2")},
		})
		_, err = b.s.JobScheduleGet(b.ctx, "acct", "sched2")
		requireNoError(t, err)
	})

	t.Run("EmptyWrites", func(t *testing.T) {
		t.Parallel()
		w := store.Writes{DeleteJobSchedules: []store.JobSchedule{{Account: "a", ID: "b"}}}
		if w.Empty() {
			t.Fatal("Writes with a schedule delete is Empty")
		}
		w = store.Writes{JobSchedules: []store.JobSchedule{schedule("a", "b")}}
		if w.Empty() {
			t.Fatal("Writes with a schedule upsert is Empty")
		}
	})
}
