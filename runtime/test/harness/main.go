// Command harness runs the runtime's steps outside a container, for the engine's tests: attest to a real
// CAS with a given measurement, open one volume from a storage directory into a working directory, run a
// command under the runtime's supervision (periodic commits, signals), commit, and print the committed
// generation. It is built only by the tests (tests/support/runtime_harness.py) and never enters an image:
// a runtime that takes its measurement and paths from its arguments would vouch for nothing.
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/cas"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/hardware"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/launcher"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
)

func main() { os.Exit(run()) }

func run() int {
	address := flag.String("cas", "", "the CAS's attestation address")
	ca := flag.String("ca", "", "the CAS's CA certificate")
	configID := flag.String("config-id", "", "the configuration id")
	measurement := flag.String("measurement", strings.Repeat("ab", 32), "the measurement to attest with")
	patience := flag.Float64("patience", 0, "seconds to ride out an absent CAS")
	storage := flag.String("storage", "", "the volume's ciphertext directory")
	workdir := flag.String("workdir", "", "the volume's plaintext directory")
	interval := flag.String("interval", "", "SCONIFY_COMMIT_INTERVAL for the command")
	flag.Parse()
	connection, err := cas.NewConnection(*address, *ca, protocol.AttestationPort, 30*time.Second)
	if err != nil {
		return launcher.Fatal(err.Error())
	}
	session, err := cas.NewSession(connection, *configID, *measurement,
		time.Duration(*patience*float64(time.Second)), "/nonexistent/token", hardware.Default())
	if err != nil {
		return launcher.Fatal(err.Error())
	}
	grant, err := session.Attest()
	if err != nil {
		return launcher.Fatal(err.Error())
	}
	volumes, _ := grant["configuration"].(map[string]any)["volumes"].([]any)
	first, _ := volumes[0].(map[string]any)
	name, _ := first["name"].(string)
	key, _ := hex.DecodeString(first["key"].(string))
	volume, err := fspf.OpenVolume(*storage, *workdir, name, key, cas.VolumeAnchor{Session: session}, "/"+name)
	if err != nil {
		return launcher.Fatal(err.Error())
	}
	fmt.Fprintf(os.Stderr, "[SCONIFY|INFO] volume %s opened at generation %d\n", name, volume.Generation())
	environment := map[string]string{"PATH": os.Getenv("PATH")}
	if *interval != "" {
		environment[launcher.CommitInterval] = *interval
	}
	configuration := &launcher.Configuration{Command: flag.Args(), Environment: environment, Pwd: "/"}
	code, err := launcher.Run(configuration, []*fspf.Volume{volume})
	if err != nil {
		return launcher.Fatal(err.Error())
	}
	if err := launcher.CommitAll([]*fspf.Volume{volume}); err != nil {
		return launcher.Fatal(err.Error())
	}
	fmt.Printf("generation %d\n", volume.Generation())
	return code
}
