// Command sconify-run is the runtime of a confidential image: its entrypoint. It takes no arguments —
// what runs is the policy's command, from the CAS — and needs nothing from the image: a static binary.
package main

import (
	"os"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/launcher"
)

func main() { os.Exit(launcher.Main()) }
