// Command kiln is Kiln's one binary: the control plane (kiln server), the
// compute node agent (kiln agent) and the client commands.
package main

import (
	"context"
	"os"

	"github.com/kilnbatch/kiln/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
