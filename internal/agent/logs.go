package agent

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Batch service logs (ComputeNode_UploadBatchServiceLogs): the agent's own
// log files, agent.log and its rotations in the node root (where the local
// provider writes the agent's output), uploaded whole: "Any log file
// containing a log message in the time range will be uploaded."

// agentLogFiles returns the log files of the node root whose messages may
// fall in the order's range: written to at or after its start.
func (a *agent) agentLogFiles(o protocol.UploadLogsOrder) []string {
	matches, _ := filepath.Glob(filepath.Join(a.rootDir, "agent.log*"))
	var out []string
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().Before(o.StartTime) {
			continue
		}
		out = append(out, filepath.Base(m))
	}
	sort.Strings(out)
	return out
}

func (a *agent) opUploadLogs(w http.ResponseWriter, r *http.Request) {
	var o protocol.UploadLogsOrder
	if err := decodeOp(r, &o); err != nil {
		opsAnswer(w, 0, nil, err)
		return
	}
	cc, err := newContainerClient(o.ContainerURL, a.client)
	if err != nil {
		opsAnswer(w, 0, nil, opsErrorf(http.StatusBadRequest, "InvalidPropertyValue", "The containerUrl is not a valid container URL."))
		return
	}
	files := a.agentLogFiles(o)
	text := "text/plain; charset=utf-8"
	for _, name := range files {
		blobName := strings.TrimSuffix(o.Directory, "/") + "/" + name
		if _, err := uploadBlob(r.Context(), cc, a.root, name, blobName, &blockblob.UploadFileOptions{
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &text},
		}); err != nil {
			code := uploadCode(err)
			status := http.StatusConflict
			if code == CodeFileUploadMiscError {
				status = http.StatusInternalServerError
			}
			opsAnswer(w, 0, nil, opsErrorf(status, code, "upload %s to %s: %s", name, redact(o.ContainerURL), describeStorageErr(err)))
			return
		}
	}
	opsAnswer(w, http.StatusOK, protocol.UploadLogsResult{Files: len(files)}, nil)
}
