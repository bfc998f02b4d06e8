// Package batch holds Kiln's domain vocabulary: the Azure Batch error codes and
// states that every layer shares. It imports no HTTP or database code.
package batch

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a domain error carrying an Azure Batch error code. Only the HTTP
// layer turns it into a status and an error body; Status records the status
// Azure uses for the code so that mapping lives next to the code itself.
type Error struct {
	Code    string
	Message string
	Status  int
	Values  []KV
}

// KV is one entry of the "values" array of an Azure Batch error.
type KV struct{ Key, Value string }

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e with a key/value detail appended.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Values = append(append([]KV(nil), e.Values...), KV{key, value})
	return &c
}

// Common constructors, named after the Azure code they produce.

func NotFound(code, what, id string) *Error {
	return Errorf(http.StatusNotFound, code, "The specified %s does not exist.", what).With("id", id)
}

func Conflict(code, format string, args ...any) *Error {
	return Errorf(http.StatusConflict, code, format, args...)
}

func InvalidProperty(name, value, reason string) *Error {
	e := Errorf(http.StatusBadRequest, "InvalidPropertyValue", "The value provided for one of the properties in the request body is invalid.")
	e.Values = []KV{{"PropertyName", name}, {"PropertyValue", value}}
	if reason != "" {
		e.Values = append(e.Values, KV{"Reason", reason})
	}
	return e
}

func MissingProperty(name string) *Error {
	e := Errorf(http.StatusBadRequest, "MissingRequiredProperty", "A required property was not specified in the request body.")
	e.Values = []KV{{"PropertyName", name}}
	return e
}

func InvalidQuery(name, value, reason string) *Error {
	e := Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.")
	e.Values = []KV{{"QueryParameterName", name}, {"QueryParameterValue", value}}
	if reason != "" {
		e.Values = append(e.Values, KV{"Reason", reason})
	}
	return e
}

func InvalidBody(reason string) *Error {
	e := Errorf(http.StatusBadRequest, "InvalidRequestBody", "The specified Request Body is not syntactically valid.")
	if reason != "" {
		e.Values = []KV{{"Reason", reason}}
	}
	return e
}

// Sentinel codes used by more than one package.
var (
	ErrPoolNotFound = &Error{Code: "PoolNotFound", Status: http.StatusNotFound, Message: "The specified pool does not exist."}
	ErrJobNotFound  = &Error{Code: "JobNotFound", Status: http.StatusNotFound, Message: "The specified job does not exist."}
	ErrTaskNotFound = &Error{Code: "TaskNotFound", Status: http.StatusNotFound, Message: "The specified task does not exist."}
	ErrNodeNotFound = &Error{Code: "NodeNotFound", Status: http.StatusNotFound, Message: "The specified node does not exist."}
	ErrFileNotFound = &Error{Code: "FileNotFound", Status: http.StatusNotFound, Message: "The specified file does not exist."}
)
