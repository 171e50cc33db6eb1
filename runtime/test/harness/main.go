// Command harness runs the runtime's steps outside a container, for the engine's tests: attest to a real
// CAS with a given measurement, open one volume from a storage directory into a working directory, run a
// command under the runtime's supervision (periodic commits, signals), commit, and print the committed
// generation. With -available or -collect it runs the runtime's hardware collection on the TEE interfaces
// it is pointed at (the tests' fakes of the kernel's, a real swtpm) and prints what it finds as JSON. It is
// built only by the tests (tests/support/runtime_harness.py) and never enters an image: a runtime that takes
// its measurement and paths from its arguments would vouch for nothing.
package main

import (
	"encoding/hex"
	"encoding/json"
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

func evidence(sources *hardware.Sources, available bool, kind, binding string) int {
	var answer any
	if available {
		answer = sources.Available()
	} else {
		bound, err := hex.DecodeString(binding)
		if err != nil {
			return launcher.Fatal("-binding: not hex")
		}
		if answer, err = sources.Collect(kind, bound); err != nil {
			return launcher.Fatal(err.Error())
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(answer); err != nil {
		return launcher.Fatal(err.Error())
	}
	return 0
}

func run() int {
	address := flag.String("cas", "", "the CAS's attestation address")
	ca := flag.String("ca", "", "the CAS's CA certificate")
	configID := flag.String("config-id", "", "the configuration id")
	measurement := flag.String("measurement", strings.Repeat("ab", 32), "the measurement to attest with")
	patience := flag.Float64("patience", 0, "seconds to ride out an absent CAS")
	storage := flag.String("storage", "", "the volume's ciphertext directory")
	workdir := flag.String("workdir", "", "the volume's plaintext directory")
	interval := flag.String("interval", "", "SCONIFY_COMMIT_INTERVAL for the command")
	available := flag.Bool("available", false, "print the evidence kinds the TEE interfaces offer")
	collect := flag.String("collect", "", "collect evidence of this kind for -binding")
	binding := flag.String("binding", "", "the evidence binding (hex)")
	sources := hardware.Default()
	flag.StringVar(&sources.TsmReports, "tsm", sources.TsmReports, "the configfs-tsm report directory")
	flag.StringVar(&sources.SevGuest, "sev-guest", sources.SevGuest, "the SEV guest device")
	flag.StringVar(&sources.TpmDevice, "tpm-device", sources.TpmDevice, "the TPM device")
	tpmSocket := flag.String("tpm-socket", "", "a TPM simulator's command socket instead of the device")
	flag.StringVar(&sources.AzureImds, "imds", "", "Azure's instance metadata service (host:port), if any")
	flag.Parse()
	if *tpmSocket != "" {
		sources.OpenTpm = func() (hardware.Transport, error) { return hardware.DialSocket(*tpmSocket) }
	}
	if *available || *collect != "" {
		return evidence(sources, *available, *collect, *binding)
	}
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
