package autoscale

import "fmt"

// Error codes. Syntax and limit codes are the Batch service error codes
// (BatchErrorCodeStrings in the Azure SDKs); InsufficientSampleData is the code
// Azure documents for an AutoScaleRun that failed for lack of samples
// (batch-pool-autoscale-event.md). Azure does not document a code for other
// runtime failures, so Kiln uses CodeEvaluationError for them. The REST error
// code table spells the length code "AutoScalingFormulaTooLong"; the SDKs'
// BatchErrorCodeStrings (what clients compare against) say
// "AutoScaleFormulaTooLong", which is used here.
const (
	CodeSyntaxError            = "AutoScalingFormulaSyntaxError"
	CodeTooLong                = "AutoScaleFormulaTooLong"
	CodeInsufficientSampleData = "InsufficientSampleData"
	CodeEvaluationError        = "AutoScaleFormulaEvaluationError"
)

// Limits from the autoscale documentation: "The formula string cannot exceed
// 8 KB, can include up to 100 statements".
const (
	MaxFormulaBytes = 8192
	MaxStatements   = 100
)

// NameValue is one entry of Error.Values, as in Azure's NameValuePair.
type NameValue struct {
	Name  string
	Value string
}

// Error is Azure's AutoScaleRunError: a code, a message, and details. Like
// Azure, the location and specifics go in a "Message" value ("Line 1, Col 37:
// Insufficient data from data set: $CPUPercent wanted 10%, received 0%").
type Error struct {
	Code    string
	Message string
	Values  []NameValue
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	for _, v := range e.Values {
		s += "; " + v.Value
	}
	return s
}

// pos is a 1-based line and column in the formula source.
type pos struct{ line, col int }

func (p pos) String() string { return fmt.Sprintf("Line %d, Col %d", p.line, p.col) }

func newError(code, message string, p pos, format string, args ...any) *Error {
	return &Error{Code: code, Message: message, Values: []NameValue{{
		Name:  "Message",
		Value: p.String() + ": " + fmt.Sprintf(format, args...),
	}}}
}

func syntaxErrorf(p pos, format string, args ...any) *Error {
	return newError(CodeSyntaxError, "The specified auto-scaling formula has a syntax error.", p, format, args...)
}

func evalErrorf(p pos, format string, args ...any) *Error {
	return newError(CodeEvaluationError, "Autoscale evaluation failed", p, format, args...)
}
