package cas

import (
	"testing"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/vectors"
)

// A CAS address is read as the engine reads it (engine/vocabulary.py's cas_host_and_port is the rule's home).
func TestAddressesAreReadAsTheEngineReadsThem(t *testing.T) {
	var cases struct {
		Addresses []struct {
			Address, Host string
			Port          int
		} `json:"addresses"`
	}
	vectors.Load(t, "protocol.json", &cases)
	if len(cases.Addresses) < 7 {
		t.Fatalf("%d cases", len(cases.Addresses))
	}
	for _, c := range cases.Addresses {
		host, port, err := HostAndPort(c.Address, protocol.AttestationPort)
		if err != nil || host != c.Host || port != c.Port {
			t.Errorf("%s: %s %d %v, the engine %s %d", c.Address, host, port, err, c.Host, c.Port)
		}
	}
	if _, _, err := HostAndPort("[fd00::7", protocol.AttestationPort); err == nil {
		t.Error("an unclosed bracket was read")
	}
}
