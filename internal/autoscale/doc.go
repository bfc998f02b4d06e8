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
//
// # Where the docs are silent
//
// Azure does not document every corner; these are Kiln's choices, each kept
// close to the evidence available:
//
//   - Operand types follow the Operations table strictly: pairs it does not
//     list (double + doubleVec, timestamp - timeinterval, comparing vectors)
//     are evaluation errors. && and || evaluate both sides; ?: only the
//     chosen branch.
//   - Sampled metrics ($CPUPercent, $PendingTasks, ...) must be read through
//     a method; the node counts ($CurrentDedicatedNodes,
//     $CurrentLowPriorityNodes, $PreemptedNodeCount, $UsableNodeCount,
//     $TaskSlotsPerNode, and the old $CurrentDedicated) are also plain
//     doubles, as the docs' examples use them.
//   - GetSample returns samples oldest first. A look-back window (a, b]
//     expects len/30s samples; the percentage is present/expected, capped
//     at 100, and the failure message is Azure's "Insufficient data from
//     data set: $X wanted P%, received Q%" with Q truncated.
//   - percentile uses the nearest-rank method, so it returns an element of
//     the vector as documented; std of fewer than two values is 0; avg, min,
//     max and range of an empty list are errors.
//   - Final targets are truncated to integers, negatives become 0, and
//     non-double or non-finite targets are errors. A bare statement that is
//     only an unknown name is ignored, as Azure evaluates
//     "something_useless" without error.
//   - /* */ comments are accepted besides the documented // comments.
package autoscale
