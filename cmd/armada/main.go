// Command armada is the whole Armada orchestrator: `armada join` runs a
// node; every other command is a client of the HTTP API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(version).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "armada:", err)
		os.Exit(1)
	}
}
