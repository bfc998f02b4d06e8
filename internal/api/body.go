package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kilnbatch/kiln/internal/batch"
)

// MaxBodyBytes is the largest request body accepted (Azure: 1 MB).
const MaxBodyBytes = 1 << 20

func errBodyTooLarge() error {
	e := batch.Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
		"The request body is too large and exceeds the maximum permissible limit.")
	return e.With("MaxLimit", strconv.Itoa(MaxBodyBytes))
}

// decodeBody reads the JSON request body into v (an azbatch type, decoded by
// its UnmarshalJSON). An empty body is an error when required, otherwise it
// leaves v as it is.
func (c *call) decodeBody(v any, required bool) error {
	if c.r.ContentLength > MaxBodyBytes {
		return errBodyTooLarge()
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge()
		}
		return batch.InvalidBody("The request body could not be read: " + err.Error())
	}
	data = bytes.TrimSpace(data)
	if !required && string(data) == "null" {
		data = nil
	}
	if len(data) == 0 {
		if required {
			return batch.InvalidBody("The request body is empty; a JSON object is required.")
		}
		return nil
	}
	if ct := header(c.r, "Content-Type"); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		e := batch.Errorf(http.StatusBadRequest, "InvalidHeaderValue",
			"The value for one of the HTTP headers is not in the correct format.")
		return e.With("HeaderName", "Content-Type").With("HeaderValue", ct).
			With("Reason", "The request body must be JSON (application/json).")
	}
	if data[0] != '{' {
		if !json.Valid(data) {
			return batch.InvalidBody("The request body is not valid JSON.")
		}
		return batch.InvalidBody("The request body must be a JSON object.")
	}
	// Unmarshal checks the syntax of the whole body before it decodes.
	if tg, ok := v.(*azbatch.TaskGroup); ok {
		*tg, err = decodeTaskGroup(data)
	} else {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		return batch.InvalidBody(err.Error())
	}
	return nil
}
