package store

// JobSchedule is a job schedule record. Doc is the service's document of the
// schedule (the wire JSON plus the runner's bookkeeping); the store never
// interprets it. State is kept as a column so that a restarting server can
// tell the schedules that still run without decoding every document.
type JobSchedule struct {
	Account string
	ID      string
	State   string
	Doc     []byte
}
