package cas

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
)

const (
	// DefaultPatience is how long the runtime keeps trying a CAS it cannot reach before it gives up a step.
	DefaultPatience = 300 * time.Second
	// renewAt is the fraction of a credential's lifetime after which it is renewed.
	renewAt      = 2.0 / 3.0
	backoffFirst = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
)

// Hardware is the node's TEE: what it can give, and evidence of a kind bound to a binding.
type Hardware interface {
	Available() []string
	Collect(kind string, binding []byte) (map[string]any, error)
}

// Clock is the session's time, injected so that tests need not wait.
type Clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// Warn prints a warning line; the launcher sets where.
var Warn = func(message string) { fmt.Fprintf(os.Stderr, "[SCONIFY|WARNING] %s\n", message) }

// Session is one runtime's standing with the CAS: its key for this run and its credential.
type Session struct {
	connection   *Connection
	configID     string
	measurement  string
	patience     time.Duration
	tokenFile    string
	hardware     Hardware
	clock        Clock
	EvidenceKind string
	private      ed25519.PrivateKey
	public       ed25519.PublicKey
	credential   string
	renewAt      time.Time
	expiresAt    time.Time
}

// NewSession makes this run's key pair.
func NewSession(connection *Connection, configID, measurement string, patience time.Duration, tokenFile string, hardware Hardware) (*Session, error) {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Session{connection: connection, configID: configID, measurement: measurement, patience: patience,
		tokenFile: tokenFile, hardware: hardware, clock: realClock{}, private: private, public: public}, nil
}

func encode(body any) []byte {
	if body == nil {
		return nil
	}
	data, _ := json.Marshal(body)
	return data
}

// Attest attests (retrying an unreachable CAS and a stale nonce) and returns the grant, whose
// "configuration" the runtime runs.
func (s *Session) Attest() (map[string]any, error) {
	return s.patiently(s.attestOnce, true)
}

func (s *Session) attestOnce() (map[string]any, error) {
	offer, err := s.connection.Request("POST", protocol.NoncePath, encode(map[string]string{"config_id": s.configID}), nil)
	if err != nil {
		return nil, err
	}
	var accepts []string
	if list, ok := offer["accepts"].([]any); ok {
		for _, kind := range list {
			if text, ok := kind.(string); ok {
				accepts = append(accepts, text)
			}
		}
	}
	kind, err := s.choose(accepts)
	if err != nil {
		return nil, err
	}
	nonce, _ := offer["nonce"].(string)
	evidence, err := s.evidence(kind, nonce)
	if err != nil {
		return nil, err
	}
	started := s.clock.Now()
	grant, err := s.connection.Request("POST", protocol.AttestPath, encode(map[string]any{
		"config_id":   s.configID,
		"measurement": s.measurement,
		"nonce":       nonce,
		"runtime_key": hex.EncodeToString(s.public),
		"evidence":    evidence,
	}), nil)
	if err != nil {
		return nil, err
	}
	lifetime, _ := grant["credential_expires_in"].(float64)
	credential, _ := grant["credential"].(string)
	if credential == "" || lifetime <= 0 {
		return nil, &Error{200, "the CAS's grant has no credential"}
	}
	s.credential = credential
	life := time.Duration(lifetime * float64(time.Second))
	s.renewAt = started.Add(time.Duration(float64(life) * renewAt))
	s.expiresAt = started.Add(life)
	if kind != s.EvidenceKind && kind == protocol.InsecureSoftwareEvidence {
		Warn("attested with " + protocol.InsecureSoftwareEvidence + ": the CAS released this service's keys on " +
			"the runtime's own word, which anyone who reaches the CAS can give (development only)")
	}
	s.EvidenceKind = kind
	return grant, nil
}

func (s *Session) hasToken() bool {
	info, err := os.Stat(s.tokenFile)
	return err == nil && info.Mode().IsRegular()
}

// available is what this runtime can give, strongest first (the TEE asked only when it matters).
func (s *Session) available(accepts []string) []string {
	var kinds []string
	for _, kind := range accepts {
		if slices.Contains(protocol.HardwareKinds, kind) {
			kinds = append(kinds, s.hardware.Available()...)
			break
		}
	}
	if s.hasToken() {
		kinds = append(kinds, protocol.Kubernetes)
	}
	return append(kinds, protocol.InsecureSoftwareEvidence)
}

func (s *Session) choose(accepts []string) (string, error) {
	available := s.available(accepts)
	for _, kind := range accepts {
		if slices.Contains(available, kind) {
			return kind, nil
		}
	}
	if len(accepts) == 0 {
		return "", &Error{403, "the policy accepts no evidence for this service: pin a Kubernetes workload identity " +
			"(services[].kubernetes) or tolerate " + protocol.InsecureSoftwareEvidence}
	}
	hint := ""
	if slices.Contains(accepts, protocol.Kubernetes) {
		hint = " (no service-account token at " + s.tokenFile + ")"
	}
	return "", &Error{403, fmt.Sprintf("the policy accepts %s evidence; this runtime can give %s%s",
		strings.Join(accepts, ", "), strings.Join(available, ", "), hint)}
}

func (s *Session) token() (string, error) {
	// Read every time: the kubelet rotates the file before the token expires.
	data, err := os.ReadFile(s.tokenFile)
	return strings.TrimSpace(string(data)), err
}

func (s *Session) evidence(kind, nonce string) (map[string]any, error) {
	switch {
	case kind == protocol.Kubernetes:
		token, err := s.token()
		if err != nil {
			return nil, &Error{403, "cannot read the service-account token: " + err.Error()}
		}
		return map[string]any{"kind": protocol.Kubernetes, "token": token}, nil
	case slices.Contains(protocol.HardwareKinds, kind):
		nonceBytes, err := hex.DecodeString(nonce)
		if err != nil {
			return nil, &Error{200, "the CAS's nonce is not hex"}
		}
		evidence, err := s.hardware.Collect(kind, protocol.EvidenceBinding(nonceBytes, s.public))
		if err != nil {
			return nil, &Error{403, fmt.Sprintf("cannot collect %s evidence on this node: %v", kind, err)}
		}
		if s.hasToken() {
			// A service that pins its workload identity needs both: the VM, and who runs in it.
			if token, err := s.token(); err == nil {
				evidence["token"] = token
			}
		}
		return evidence, nil
	}
	return map[string]any{"kind": protocol.InsecureSoftwareEvidence}, nil
}

// VolumeRequest is one signed volume request, renewing the credential when due and re-attesting on a
// 401; a read is retried for the session's patience while the CAS cannot be reached.
func (s *Session) VolumeRequest(method, volume string, body any) (map[string]any, error) {
	if method == "GET" {
		return s.patiently(func() (map[string]any, error) { return s.signed(method, volume, body) }, false)
	}
	return s.signed(method, volume, body)
}

func (s *Session) signed(method, volume string, body any) (map[string]any, error) {
	if err := s.renewIfDue(); err != nil {
		return nil, err
	}
	answer, err := s.sendSigned(method, volume, body)
	if casError, ok := err.(*Error); !ok || casError.Status != 401 {
		return answer, err
	}
	if _, err := s.patiently(s.attestOnce, true); err != nil { // restarted CAS, expired credential
		return nil, err
	}
	return s.sendSigned(method, volume, body)
}

func (s *Session) sendSigned(method, volume string, body any) (map[string]any, error) {
	path := fmt.Sprintf(protocol.VolumeStatePath, url.PathEscape(volume))
	payload := encode(body)
	signature := ed25519.Sign(s.private, protocol.RequestSigningInput(method, path, payload, s.credential))
	return s.connection.Request(method, path, payload, map[string]string{
		"authorization":          "Bearer " + s.credential,
		protocol.SignatureHeader: hex.EncodeToString(signature),
	})
}

func (s *Session) renewIfDue() error {
	if s.credential == "" || s.clock.Now().Before(s.renewAt) {
		return nil
	}
	if _, err := s.attestOnce(); err != nil {
		// A credential still valid keeps working while the CAS is away; a refusal (the policy changed) is final.
		if casError, ok := err.(*Error); !ok || casError.Status != 0 || !s.clock.Now().Before(s.expiresAt) {
			return err
		}
	}
	return nil
}

// Deadline is when a step starting now must give up on an unreachable CAS.
func (s *Session) Deadline() time.Time { return s.clock.Now().Add(s.patience) }

// Past tells whether deadline has come.
func (s *Session) Past(deadline time.Time) bool { return !s.clock.Now().Before(deadline) }

func (s *Session) patiently(attempt func() (map[string]any, error), retryUnauthorized bool) (map[string]any, error) {
	deadline := s.Deadline()
	delay := backoffFirst
	for {
		answer, err := attempt()
		if err == nil {
			return answer, nil
		}
		casError, ok := err.(*Error)
		retryable := ok && (casError.Status == 0 || (retryUnauthorized && casError.Status == 401))
		if !retryable || s.Past(deadline.Add(-delay)) {
			return nil, err
		}
		s.clock.Sleep(delay)
		delay = min(delay*2, backoffMax)
	}
}

// PatienceFromEnvironment is SCONIFY_CAS_PATIENCE (seconds), else DefaultPatience. Only availability
// depends on it, so the container's environment may set it.
func PatienceFromEnvironment() time.Duration {
	text, set := os.LookupEnv("SCONIFY_CAS_PATIENCE")
	if !set {
		return DefaultPatience
	}
	seconds, err := strconv.ParseFloat(text, 64)
	if err != nil || seconds < 0 || seconds != seconds {
		return DefaultPatience
	}
	return time.Duration(seconds * float64(time.Second))
}
