// Package cas is the runtime's side of the CAS: attestation, and volume freshness with the credential it
// grants (engine/runtime/cas.py is the engine's Python client of the same API). The CAS's identity is
// pinned: only its CA certificate is trusted, and the host name is checked.
//
// A running service must not lose work to the CAS: a Session re-attests before its credential expires and
// whenever the CAS answers 401 (a restarted CAS, an expired credential), retries a CAS it cannot reach
// with bounded backoff for its patience, and settles a swap whose answer it never saw by reading the
// volume's state.
package cas

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxResponseBytes bounds what the runtime reads of one answer.
const MaxResponseBytes = 16 * 1024 * 1024

// Error is a CAS's refusal with its HTTP status, or Status 0: the CAS could not be reached.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return "CAS unreachable: " + e.Reason
	}
	return fmt.Sprintf("CAS refused (%d): %s", e.Status, e.Reason)
}

// Connection is the attestation API of one CAS over TLS with its CA pinned, kept alive between requests.
type Connection struct {
	Host   string
	Port   int
	client *http.Client
	base   string
}

// HostAndPort reads a CAS address as users write it (host, host:port, [IPv6], [IPv6]:port), with
// defaultPort when none is given; engine/vocabulary.py's cas_host_and_port is the rule's home.
func HostAndPort(address string, defaultPort int) (string, int, error) {
	if strings.HasPrefix(address, "[") {
		host, rest, closed := strings.Cut(address[1:], "]")
		if !closed || (rest != "" && !strings.HasPrefix(rest, ":")) {
			return "", 0, fmt.Errorf("%q: expected [IPv6] or [IPv6]:PORT", address)
		}
		if rest == "" {
			return host, defaultPort, nil
		}
		port, err := strconv.Atoi(rest[1:])
		return host, port, err
	}
	if strings.Count(address, ":") == 1 {
		host, port, _ := strings.Cut(address, ":")
		number, err := strconv.Atoi(port)
		if host == "" {
			host = address
		}
		return host, number, err
	}
	return address, defaultPort, nil
}

// NewConnection reaches address with caFile as the only trusted root.
func NewConnection(address, caFile string, defaultPort int, timeout time.Duration) (*Connection, error) {
	host, port, err := HostAndPort(address, defaultPort)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CAS's CA certificate %s: %v", caFile, errors.Unwrap(err))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no CA certificate in it", caFile)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12},
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 1,
		Proxy:               nil, // the CAS is reached directly: a proxy would see nothing, but could stall
	}
	return &Connection{
		Host:   host,
		Port:   port,
		client: &http.Client{Transport: transport, Timeout: timeout},
		base:   "https://" + net.JoinHostPort(host, strconv.Itoa(port)),
	}, nil
}

// Request sends one request and decodes the JSON object it answers; a refusal is an *Error with its
// status, a failure to reach the CAS an *Error with status 0. Go's transport sends a request again on a
// fresh connection only when nothing of it was written, so a volume swap is never sent twice.
func (c *Connection) Request(method, path string, body []byte, headers map[string]string) (map[string]any, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	request, err := http.NewRequest(method, c.base+path, reader)
	if err != nil {
		return nil, &Error{0, err.Error()}
	}
	request.Header.Set("content-type", "application/json")
	for name, value := range headers {
		request.Header.Set(name, value)
	}
	response, err := c.client.Do(request)
	if err != nil {
		return nil, &Error{0, describe(err)}
	}
	defer response.Body.Close()
	data, err := io.ReadAll(io.LimitReader(response.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, &Error{0, describe(err)}
	}
	if len(data) > MaxResponseBytes {
		return nil, &Error{response.StatusCode, "response too large"}
	}
	var document any = map[string]any{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &document); err != nil {
			return nil, &Error{response.StatusCode, "response is not JSON"}
		}
	}
	object, isObject := document.(map[string]any)
	if response.StatusCode >= 400 {
		reason := http.StatusText(response.StatusCode)
		if isObject {
			if text, ok := object["error"].(string); ok {
				reason = text
			}
		}
		return nil, &Error{response.StatusCode, reason}
	}
	if !isObject {
		return nil, &Error{response.StatusCode, "response is not a JSON object"}
	}
	return object, nil
}

// describe words a transport failure; a certificate that does not chain to the pin is said as such.
func describe(err error) string {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verification *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown), errors.As(err, &verification):
		return "the CAS's certificate does not verify against the pinned CA certificate"
	case errors.As(err, &hostname):
		return "the CAS's certificate is not for " + hostname.Host
	}
	var urlError *url.Error
	if errors.As(err, &urlError) {
		return urlError.Err.Error()
	}
	return err.Error()
}
