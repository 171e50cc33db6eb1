// Package launcher is what a confidential container runs instead of its program:
//
//  1. Measure the image (program, libraries, runtime, plan) and attest to the CAS with that measurement;
//     the CAS answers with the service's configuration only if the policy lists it.
//  2. Verify the image's protected regions against the FSPF key and tag from the CAS, and decrypt the
//     encrypted ones into their (memory-backed) paths.
//  3. Open each volume from its ciphertext mount into its memory-backed path, anchored in the CAS.
//  4. Run the policy's command — never the container's arguments — with exactly the policy's environment
//     and working directory, forwarding signals; commit the volumes every SCONIFY_COMMIT_INTERVAL
//     seconds while it runs, if the policy's environment sets that; then commit them once more and exit
//     with the program's exit code.
//
// Every refusal is one [SCONIFY|FATAL] line on standard error and exit code 70, with nothing committed.
package launcher

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/cas"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/fspf"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/hardware"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/layout"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/measure"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
)

// ExitRefused is the exit code of every refusal.
const ExitRefused = 70

// CommitInterval is the policy environment variable: seconds between commits of a running program's
// volumes. It is read from the policy (the CAS's answer), never from the container, so whoever starts the
// container cannot turn it off; the program sees it too.
const CommitInterval = "SCONIFY_COMMIT_INTERVAL"

// Version is the engine version this runtime was built for (set at build time).
var Version = "dev"

// Refusal is a reason not to run, reported as the one FATAL line.
type Refusal struct{ Message string }

func (r *Refusal) Error() string { return r.Message }

func refuse(format string, args ...any) error { return &Refusal{fmt.Sprintf(format, args...)} }

// Fatal prints the FATAL line and gives the exit code.
func Fatal(message string) int {
	fmt.Fprintf(os.Stderr, "[SCONIFY|FATAL] %s\n", message)
	return ExitRefused
}

func logInfo(format string, args ...any) {
	switch os.Getenv("SCONE_LOG") {
	case "", "0", "ERROR", "FATAL":
		return
	}
	fmt.Fprintf(os.Stderr, "[SCONIFY|INFO] %s\n", fmt.Sprintf(format, args...))
}

func seconds(since time.Time) string { return fmt.Sprintf("%.3f", time.Since(since).Seconds()) }

// MemoryBacked tells whether path is a mount point of a memory file system (plaintext never reaches a disk).
func MemoryBacked(path string) bool {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	mountinfo, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer mountinfo.Close()
	scanner := bufio.NewScanner(mountinfo)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		for i, field := range fields {
			if field == "-" && len(fields) > i+1 && len(fields) > 4 && unescapeMount(fields[4]) == target {
				if fields[i+1] == "tmpfs" || fields[i+1] == "ramfs" {
					return true
				}
			}
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (a space is \040).
func unescapeMount(field string) string {
	if !strings.Contains(field, `\`) {
		return field
	}
	var b strings.Builder
	for i := 0; i < len(field); i++ {
		if field[i] == '\\' && i+3 < len(field) {
			if value, err := strconv.ParseUint(field[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(value))
				i += 3
				continue
			}
		}
		b.WriteByte(field[i])
	}
	return b.String()
}

func requireMemory(path, what string) error {
	if !MemoryBacked(path) {
		return refuse("%s (%s) is not a memory-backed mount: plaintext would reach a disk; mount a tmpfs there", path, what)
	}
	return nil
}

// Configuration is what the CAS's grant tells the runtime to run.
type Configuration struct {
	Command     []string
	Environment map[string]string
	Pwd         string
	FspfKey     string
	FspfTag     string
	Volumes     []VolumeConfiguration
}

// VolumeConfiguration is one volume of the grant.
type VolumeConfiguration struct{ Name, Path, Key string }

func readConfiguration(grant map[string]any) (*Configuration, error) {
	raw, ok := grant["configuration"].(map[string]any)
	if !ok {
		return nil, refuse("the CAS's grant has no configuration")
	}
	c := &Configuration{Environment: map[string]string{}, Pwd: "/"}
	command, _ := raw["command"].([]any)
	for _, part := range command {
		text, ok := part.(string)
		if !ok {
			return nil, refuse("the CAS's configuration: command is not a list of strings")
		}
		c.Command = append(c.Command, text)
	}
	if len(c.Command) == 0 {
		return nil, refuse("the CAS's configuration has no command")
	}
	if environment, ok := raw["environment"].(map[string]any); ok {
		for name, value := range environment {
			text, ok := value.(string)
			if !ok {
				return nil, refuse("the CAS's configuration: environment variable %s is not a string", name)
			}
			c.Environment[name] = text
		}
	}
	if pwd, ok := raw["pwd"].(string); ok && pwd != "" {
		c.Pwd = pwd
	}
	if fspfSection, ok := raw["fspf"].(map[string]any); ok {
		c.FspfKey, _ = fspfSection["key"].(string)
		c.FspfTag, _ = fspfSection["tag"].(string)
	}
	volumes, _ := raw["volumes"].([]any)
	for _, item := range volumes {
		volume, _ := item.(map[string]any)
		name, _ := volume["name"].(string)
		path, _ := volume["path"].(string)
		key, _ := volume["key"].(string)
		if name == "" || path == "" || key == "" {
			return nil, refuse("the CAS's configuration: a volume without name, path or key")
		}
		c.Volumes = append(c.Volumes, VolumeConfiguration{name, path, key})
	}
	return c, nil
}

// CommitEvery is the policy's SCONIFY_COMMIT_INTERVAL, or 0 for none; not a positive number is refused
// (a policy mistake must not silently mean "never").
func (c *Configuration) CommitEvery() (time.Duration, error) {
	text, set := c.Environment[CommitInterval]
	if !set {
		return 0, nil
	}
	value, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || !(value > 0) || math.IsInf(value, 0) {
		return 0, refuse("%s in the policy: expected a positive number of seconds", CommitInterval)
	}
	return time.Duration(value * float64(time.Second)), nil
}

// Prepare is steps 1 to 3: attest, verify and decrypt regions, open volumes.
func Prepare(root string) (*Configuration, []*fspf.Volume, error) {
	configID, address := os.Getenv("SCONE_CONFIG_ID"), os.Getenv("SCONE_CAS_ADDR")
	pin := os.Getenv("SCONE_CAS_CA")
	if pin == "" {
		pin = layout.CasPin
	}
	if configID == "" || address == "" {
		return nil, nil, refuse("SCONE_CONFIG_ID and SCONE_CAS_ADDR must be set (the sconifier bakes them in)")
	}
	if os.Getenv("SCONE_VERSION") == "1" {
		// SCONE_MODE chooses SCONE's enclave mode (hw, sim, auto); the open engine has no enclave: it attests
		// with the evidence the policy accepts and the node offers, printed once attested.
		mode := os.Getenv("SCONE_MODE")
		if mode == "" {
			mode = "auto"
		}
		fmt.Fprintf(os.Stderr, "[SCONIFY] runtime %s, config %s, CAS %s, SCONE_MODE %s (open engine), log %s\n",
			Version, configID, address, mode, os.Getenv("SCONE_LOG"))
	}
	started := time.Now()
	measurement, observation, err := measure.MeasureAndObserve(root)
	if err != nil {
		return nil, nil, refuse("cannot measure the image: %s", describe(err))
	}
	var hashed int64
	for path := range observation.Digests {
		hashed += observation.Stats[path].Size
	}
	logInfo("measurement %s (%d files, %.0f MB, %s s)", measurement, len(observation.Digests), float64(hashed)/1e6, seconds(started))

	connection, err := cas.NewConnection(address, pin, protocol.AttestationPort, 30*time.Second)
	if err != nil {
		return nil, nil, refuse("%v", err)
	}
	session, err := cas.NewSession(connection, configID, measurement, cas.PatienceFromEnvironment(),
		layout.KubernetesToken, hardware.Default())
	if err != nil {
		return nil, nil, err
	}
	grant, err := session.Attest()
	if err != nil {
		var refused *cas.Error
		if errors.As(err, &refused) && refused.Status != 0 {
			return nil, nil, refuse("attestation refused: %s", refused.Reason)
		}
		return nil, nil, refuse("%v", err)
	}
	logInfo("attested with %s evidence", session.EvidenceKind)
	configuration, err := readConfiguration(grant)
	if err != nil {
		return nil, nil, err
	}
	if configuration.FspfKey != "" {
		started := time.Now()
		key, keyErr := hex.DecodeString(configuration.FspfKey)
		tag, tagErr := hex.DecodeString(configuration.FspfTag)
		if keyErr != nil || tagErr != nil || len(key) != 32 || len(tag) != fspf.TagSize {
			return nil, nil, refuse("the CAS's configuration: a malformed FSPF key or tag")
		}
		memoryOnly := func(path string) error { return requireMemory(path, "encrypted region") }
		if _, err := fspf.DecryptTree(root, key, tag, memoryOnly, observation); err != nil {
			return nil, nil, err
		}
		logInfo("protected regions verified and decrypted (%s s)", seconds(started))
	}
	anchor := cas.VolumeAnchor{Session: session}
	var volumes []*fspf.Volume
	for _, volume := range configuration.Volumes {
		plaintext := fspf.HostPath(root, volume.Path)
		if err := requireMemory(plaintext, "volume "+volume.Name); err != nil {
			return nil, nil, err
		}
		started := time.Now()
		key, err := hex.DecodeString(volume.Key)
		if err != nil {
			return nil, nil, refuse("the CAS's configuration: volume %s has a malformed key", volume.Name)
		}
		opened, err := fspf.OpenVolume(filepath.Join(layout.VolumeStorage, volume.Name), plaintext, volume.Name, key, anchor, volume.Path)
		if err != nil {
			return nil, nil, err
		}
		volumes = append(volumes, opened)
		logInfo("volume %s opened at generation %d (%s s)", volume.Name, opened.Generation(), seconds(started))
	}
	return configuration, volumes, nil
}
