package protocol

import "time"

// Node operations the server asks of an agent directly, through the
// agent's HTTP server (the one that serves /files/), signed like file
// requests (package fileserver: X-Kiln-Date, X-Kiln-Signature):
//
//	POST   /ops/users          NodeUserOrder: create a user account (201)
//	PUT    /ops/users/{name}   NodeUserOrder with Replace: replace its password, key, expiry
//	DELETE /ops/users/{name}   delete it
//	DELETE /ops/users          delete every account the agent created (reimage, removal)
//	POST   /ops/uploadlogs     UploadLogsOrder -> UploadLogsResult
//	POST   /ops/reimage        wipe the task, shared and startup directories and the users, once no attempt runs (204)
//
// They answer synchronously, as the Azure operations do; a failure answers
// an OpsError with the HTTP status the Batch API should answer.
const (
	PathOpsUsers      = "/ops/users"
	PathOpsUploadLogs = "/ops/uploadlogs"
	PathOpsReimage    = "/ops/reimage"
)

// NodeUserOrder creates or replaces a user account of the node.
type NodeUserOrder struct {
	Name         string    `json:"name"`
	Password     string    `json:"password,omitempty"`
	SSHPublicKey string    `json:"sshPublicKey,omitempty"`
	IsAdmin      bool      `json:"isAdmin,omitempty"`
	ExpiryTime   time.Time `json:"expiryTime,omitzero"`
	// Replace (Update User): a password or key left empty is removed.
	Replace bool `json:"replace,omitempty"`
}

// UploadLogsOrder uploads the agent's log files holding messages in
// [StartTime, EndTime) (zero EndTime: up to now) to ContainerURL (a SAS
// URL granting write), under Directory.
type UploadLogsOrder struct {
	ContainerURL string    `json:"containerUrl"`
	StartTime    time.Time `json:"startTime"`
	EndTime      time.Time `json:"endTime,omitzero"`
	Directory    string    `json:"directory"`
}

// UploadLogsResult counts the files uploaded.
type UploadLogsResult struct {
	Files int `json:"files"`
}

// OpsError is the body of a failed /ops/ call: an Azure Batch error code
// and message.
type OpsError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
