package store

// AccountStats is one of an account's lifetime statistics records: Kind
// names which ("jobs" for the lifetime job statistics, "pools" for the pool
// ones) and Doc is the service's document of it, which the store never
// interprets. They outlive the jobs and pools they count, which is why
// they are records of their own.
type AccountStats struct {
	Account string
	Kind    string
	Doc     []byte
}
