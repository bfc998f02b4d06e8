// Package autoscale parses and evaluates Azure Batch autoscale formulas, the
// small expression language a pool's autoScaleFormula is written in.
//
// The language follows "Create a formula to automatically scale compute nodes
// in a Batch pool" (https://learn.microsoft.com/azure/batch/batch-automatic-scaling):
// statements separated by ';', assignments to user variables and to the
// read-write service variables, the read-only service variables with their
// sample methods (GetSample, GetSamplePercent, GetSamplePeriod, Count,
// HistoryBeginTime), the types double, doubleVec, doubleVecList, string,
// timestamp and timeinterval, the operator table with its type rules, and the
// built-in functions.
//
// Parse rejects what Azure rejects when a formula is set on a pool (syntax
// errors, more than 8 KB, more than 100 statements); Evaluate does what a pool
// evaluation does and reports failures in Azure's AutoScaleRunError shape so
// the API layer can return them unchanged.
package autoscale
