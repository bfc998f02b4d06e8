package sqlite_test

import (
	"testing"

	"github.com/kilnbatch/kiln/internal/store/storetest"
)

func TestAccountDelete(t *testing.T) {
	t.Parallel()
	storetest.ExerciseAccountDelete(t, openTest(t))
}
