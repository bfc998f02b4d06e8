//go:build !linux

package agent

import "github.com/kilnbatch/kiln/internal/protocol"

// readNodeFigures measures nothing outside Linux: the agent then sends no
// metrics and the server's samples leave the node out.
func readNodeFigures(string) (protocol.NodeMetrics, cpuTimes, bool) {
	return protocol.NodeMetrics{}, cpuTimes{}, false
}
