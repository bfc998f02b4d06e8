package agent

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Transfers to and from Azure Blob storage (Azure Storage, Azurite, Kiln
// storage: the same protocol) go through the official azblob SDK in blocks:
// a file is never held in memory, only blobConcurrency blocks are in flight
// per file (each streamed, not buffered), and blobParallelFiles files move
// at once. That keeps the agent's memory flat whatever the file sizes.
const (
	blobBlockSize     = 8 << 20 // 8 MiB
	blobConcurrency   = 4
	blobParallelFiles = 4
)

// newContainerClient is a client for a container URL that carries its own
// authorization (a SAS query, or nothing for a public container). It sends
// through the agent's HTTP client and retries transient failures (network,
// 408, 429, 5xx) a few times, quickly: a task waits on it.
func newContainerClient(containerURL string, hc *http.Client) (*container.Client, error) {
	return container.NewClientWithNoCredential(containerURL, &container.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: hc,
			Retry: policy.RetryOptions{
				MaxRetries:    3,
				RetryDelay:    500 * time.Millisecond,
				MaxRetryDelay: 5 * time.Second,
			},
			Telemetry: policy.TelemetryOptions{ApplicationID: "kiln-agent"},
		},
	})
}

// storageStatus returns the HTTP status and the storage error code of the
// answer err carries (0 and "" when err is not a storage answer).
func storageStatus(err error) (int, string) {
	if re := (*azcore.ResponseError)(nil); errors.As(err, &re) {
		return re.StatusCode, re.ErrorCode
	}
	if se := (*httpStatusError)(nil); errors.As(err, &se) {
		return se.code, ""
	}
	return 0, ""
}

// describeStorageErr describes err in one line without any URL: the SDK's
// own messages span many lines, and transport errors embed the request URL
// with its SAS signature.
func describeStorageErr(err error) string {
	if re := (*azcore.ResponseError)(nil); errors.As(err, &re) {
		msg := fmt.Sprintf("storage answered %d %s", re.StatusCode, http.StatusText(re.StatusCode))
		if re.ErrorCode != "" {
			msg += " (" + re.ErrorCode + ")"
		}
		return msg
	}
	return redactErr(err)
}

// httpStatusError is a non-success answer to a plain GET.
type httpStatusError struct {
	code   int
	status string
}

func (e *httpStatusError) Error() string { return "server answered " + e.status }
