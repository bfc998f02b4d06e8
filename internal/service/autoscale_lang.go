package service

import "github.com/kilnbatch/kiln/internal/autoscale"

// The formula language is package autoscale; these names keep the service's
// autoscale code short.
type (
	asSample  = autoscale.Sample
	asInputs  = autoscale.Inputs
	asResult  = autoscale.Result
	asError   = autoscale.Error
	asFormula = *autoscale.Formula
)

func asParse(src string) (asFormula, error) { return autoscale.Parse(src) }
