package protocol_test

import (
	"bytes"
	"testing"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/vectors"
)

func TestByteStringsAreTheEngines(t *testing.T) {
	var cases struct {
		Bindings []struct {
			Nonce      string `json:"nonce"`
			RuntimeKey string `json:"runtime_key"`
			Binding    string `json:"binding"`
			ReportData string `json:"report_data"`
		} `json:"bindings"`
		Requests []struct {
			Method, Path, Body, Credential string
			SigningInput                   string `json:"signing_input"`
		} `json:"requests"`
	}
	vectors.Load(t, "protocol.json", &cases)
	if len(cases.Bindings) == 0 || len(cases.Requests) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases.Bindings {
		binding := protocol.EvidenceBinding(vectors.Hex(t, c.Nonce), vectors.Hex(t, c.RuntimeKey))
		if !bytes.Equal(binding, vectors.Hex(t, c.Binding)) {
			t.Errorf("binding of nonce %s differs", c.Nonce)
		}
		if !bytes.Equal(protocol.HardwareReportData(binding), vectors.Hex(t, c.ReportData)) {
			t.Errorf("report data of nonce %s differs", c.Nonce)
		}
	}
	for _, c := range cases.Requests {
		input := protocol.RequestSigningInput(c.Method, c.Path, vectors.Hex(t, c.Body), c.Credential)
		if !bytes.Equal(input, vectors.Hex(t, c.SigningInput)) {
			t.Errorf("%s %s: signing input differs:\n%q", c.Method, c.Path, input)
		}
	}
}
