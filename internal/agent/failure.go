package agent

import (
	"errors"
	"fmt"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Failure codes of the steps around the process, named after Azure's
// TaskFailureInformationCodes so that exit conditions and users see what
// they would see on Azure Batch. All of them are user errors.
const (
	// CodeApplicationPackageError: an application package could not be
	// downloaded or installed.
	CodeApplicationPackageError = "ApplicationPackageError"

	// CodeBlobNotFound: a resource file's URL or blob answered 404.
	CodeBlobNotFound = "BlobNotFound"
	// CodeBlobAccessDenied: a resource file's URL, blob or container
	// answered 401 or 403 (for example a SAS without read or list).
	CodeBlobAccessDenied = "BlobAccessDenied"
	// CodeBlobDownloadMiscError: any other resource file failure (network,
	// 5xx after retries, an invalid filePath, fileMode or blob name).
	CodeBlobDownloadMiscError = "BlobDownloadMiscError"
	// CodeDiskFull: the disk filled up while writing a resource file.
	CodeDiskFull = "DiskFull"
	// CodeResourceDirectoryCreateFailed: a resource file's directory could
	// not be created (also: it would leave the working directory through a
	// symbolic link).
	CodeResourceDirectoryCreateFailed = "ResourceDirectoryCreateFailed"
	// CodeResourceFileCreateFailed: a resource file could not be created.
	CodeResourceFileCreateFailed = "ResourceFileCreateFailed"
	// CodeResourceFileWriteFailed: a resource file could not be written.
	CodeResourceFileWriteFailed = "ResourceFileWriteFailed"

	// CodeFileUploadAccessDenied: the output container answered 401 or 403
	// (for example a SAS without write).
	CodeFileUploadAccessDenied = "FileUploadAccessDenied"
	// CodeFileUploadContainerNotFound: the output container does not exist.
	CodeFileUploadContainerNotFound = "FileUploadContainerNotFound"
	// CodeFileUploadMiscError: any other output file failure (a single file
	// pattern that names no file, an invalid pattern, network, 5xx).
	CodeFileUploadMiscError = "FileUploadMiscError"
)

// taskError is an error that ends an attempt with a failure code. The
// message names the file or URL concerned, never a SAS signature.
type taskError struct {
	code string
	msg  string
}

func (e *taskError) Error() string { return e.msg }

func newTaskError(code, format string, args ...any) *taskError {
	return &taskError{code: code, msg: fmt.Sprintf(format, args...)}
}

// failureCode is the code err carries, or fallback.
func failureCode(err error, fallback string) string {
	if te := (*taskError)(nil); errors.As(err, &te) {
		return te.code
	}
	return fallback
}

// failedIn is the completed event of an attempt that failed in phase with
// a user error carrying err's code (or fallback) and message.
func failedIn(phase string, err error, fallback string) protocol.Event {
	return protocol.Event{Failure: &protocol.FailureInfo{
		Category: CategoryUserError, Code: failureCode(err, fallback), Message: err.Error(), Phase: phase}}
}
