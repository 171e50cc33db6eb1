// Package hardware collects evidence from inside a confidential VM: what the node offers, and a report
// bound to one attestation. Three sources, as Linux and Azure expose them (engine/runtime/hardware.py
// documents each; the CAS's verifiers in engine/attestation read what these give):
//
//   - configfs-tsm (/sys/kernel/config/tsm/report, Linux 6.7+): write the report-data to inblob, read the
//     report or quote from outblob (and SEV-SNP's certificate table from auxblob); generation detects
//     another writer in between;
//   - /dev/sev-guest (older SEV-SNP guests): the SNP_GET_REPORT ioctl;
//   - the vTPM of an Azure confidential VM (/dev/tpmrm0): the HCL report in NV index 0x01400001 and a
//     quote by the attestation key at 0x81000003.
package hardware

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
)

const (
	TsmReportDir   = "/sys/kernel/config/tsm/report"
	SevGuestDevice = "/dev/sev-guest"
	// AzureImds is Azure's instance metadata service.
	AzureImds         = "169.254.169.254"
	imdsTimeout       = 10 * time.Second
	maxImdsAnswer     = 256 * 1024
	tsmAttempts       = 16
	hclReportNvIndex  = 0x01400001
	attestationKey    = 0x81000003
	hclHeaderSize     = 32
	hardwareReportLen = 1184
	reportTypeSnp     = 2
	reportTypeTdx     = 4
	tdReportSize      = 1024
	reportTypeOffset  = hclHeaderSize + hardwareReportLen + 8
	snpReportSize     = 1184
	snpResponseSize   = 4000
	snpReportOffset   = 32
	// SnpGetReport is SNP_GET_REPORT of include/uapi/linux/sev-guest.h: _IOWR('S', 0, struct snp_guest_request_ioctl).
	SnpGetReport = (3 << 30) | (32 << 16) | ('S' << 8) | 0x0
)

// QuotedPcrs are every PCR of the SHA-256 bank: the CAS checks the ones the session pins.
var QuotedPcrs = func() []int {
	out := make([]int, 24)
	for i := range out {
		out[i] = i
	}
	return out
}()

// EvidenceError is a TEE interface that failed to give a report.
type EvidenceError struct{ Message string }

func (e *EvidenceError) Error() string { return e.Message }

func failed(format string, args ...any) error { return &EvidenceError{fmt.Sprintf(format, args...)} }

func unwrap(err error) error {
	var pathError *os.PathError
	if errors.As(err, &pathError) {
		return pathError.Err
	}
	return err
}

// Ioctl is the system call, a parameter so that tests can give a fake laid out as the kernel documents.
type Ioctl func(fd uintptr, request uintptr, argument unsafe.Pointer) error

func realIoctl(fd uintptr, request uintptr, argument unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, request, uintptr(argument))
	if errno != 0 {
		return errno
	}
	return nil
}

// Sources are this node's TEE interfaces; the paths are fields so that tests can give fakes.
type Sources struct {
	TsmReports string
	SevGuest   string
	TpmDevice  string
	// OpenTpm opens the vTPM (default: the device).
	OpenTpm   func() (Transport, error)
	Ioctl     Ioctl
	AzureImds string // empty: not on Azure
}

// Default is the node as Linux and Azure lay it out.
func Default() *Sources {
	return &Sources{TsmReports: TsmReportDir, SevGuest: SevGuestDevice, TpmDevice: TpmDevice, Ioctl: realIoctl, AzureImds: AzureImds}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

// Available is the hardware kinds this node can give, strongest first.
func (s *Sources) Available() []string {
	var kinds []string
	provider := s.tsmProvider()
	if provider == "sev_guest" || (provider == "" && exists(s.SevGuest)) {
		kinds = append(kinds, protocol.SevSnp)
	}
	if provider == "tdx_guest" {
		kinds = append(kinds, protocol.Tdx)
	}
	if s.OpenTpm != nil || exists(s.TpmDevice) {
		kinds = append(kinds, protocol.AzureCvm)
	}
	return kinds
}

func (s *Sources) tsmProvider() string {
	if !isDir(s.TsmReports) {
		return ""
	}
	entry, err := s.tsmEntry()
	if err != nil {
		return ""
	}
	defer os.Remove(entry)
	data, _ := os.ReadFile(filepath.Join(entry, "provider"))
	return strings.TrimSpace(string(data))
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

// Collect is evidence of kind bound to binding (protocol.EvidenceBinding).
func (s *Sources) Collect(kind string, binding []byte) (map[string]any, error) {
	reportData := protocol.HardwareReportData(binding)
	switch {
	case (kind == protocol.SevSnp || kind == protocol.Tdx) && isDir(s.TsmReports):
		report, certificates, err := s.TsmReport(reportData)
		if err != nil {
			return nil, err
		}
		if kind == protocol.Tdx {
			return map[string]any{"kind": protocol.Tdx, "quote": b64(report)}, nil
		}
		evidence := map[string]any{"kind": protocol.SevSnp, "report": b64(report)}
		if len(certificates) > 0 {
			evidence["certificates"] = b64(certificates)
		}
		return evidence, nil
	case kind == protocol.SevSnp:
		report, err := s.SevGuestReport(reportData)
		if err != nil {
			return nil, err
		}
		return map[string]any{"kind": protocol.SevSnp, "report": b64(report)}, nil
	case kind == protocol.AzureCvm:
		return s.VtpmEvidence(binding)
	}
	return nil, failed("this node cannot give %s evidence", kind)
}

func (s *Sources) tsmEntry() (string, error) {
	entry := filepath.Join(s.TsmReports, fmt.Sprintf("sconify-%d", os.Getpid()))
	if err := os.Mkdir(entry, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", failed("cannot make a configfs-tsm report entry: %v", unwrap(err))
	}
	return entry, nil
}

func readTrimmed(path string) (string, error) {
	data, err := os.ReadFile(path)
	return strings.TrimSpace(string(data)), err
}

// TsmReport is the report (SEV-SNP) or quote (TDX) for reportData, and the auxiliary blob.
func (s *Sources) TsmReport(reportData []byte) ([]byte, []byte, error) {
	entry, err := s.tsmEntry()
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(entry)
	for range tsmAttempts {
		if err := os.WriteFile(filepath.Join(entry, "inblob"), reportData, 0o600); err != nil {
			return nil, nil, failed("configfs-tsm: %v", unwrap(err))
		}
		generation, err := readTrimmed(filepath.Join(entry, "generation"))
		if err != nil {
			return nil, nil, failed("configfs-tsm: %v", unwrap(err))
		}
		report, err := os.ReadFile(filepath.Join(entry, "outblob"))
		if err != nil {
			return nil, nil, failed("configfs-tsm: %v", unwrap(err))
		}
		auxiliary, err := os.ReadFile(filepath.Join(entry, "auxblob"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, failed("configfs-tsm: %v", unwrap(err))
		}
		// The kernel counts inblob writes: an unchanged count means no one else wrote in between.
		if again, err := readTrimmed(filepath.Join(entry, "generation")); err == nil && again == generation {
			return report, auxiliary, nil
		}
	}
	return nil, nil, failed("configfs-tsm: another writer kept changing the report entry")
}

// SevGuestReport is an SEV-SNP report from /dev/sev-guest (SNP_GET_REPORT, VMPL 0).
func (s *Sources) SevGuestReport(reportData []byte) ([]byte, error) {
	request := make([]byte, 96) // user_data[64], vmpl u32, reserved[28]
	copy(request, reportData)
	response := make([]byte, snpResponseSize)
	// struct snp_guest_request_ioctl: u8 msg_version, u64 req_data, u64 resp_data, u64 exitinfo2.
	argument := make([]byte, 32)
	argument[0] = 1
	binary.LittleEndian.PutUint64(argument[8:], uint64(uintptr(unsafe.Pointer(&request[0]))))
	binary.LittleEndian.PutUint64(argument[16:], uint64(uintptr(unsafe.Pointer(&response[0]))))
	device, err := os.OpenFile(s.SevGuest, os.O_RDWR, 0)
	if err != nil {
		return nil, failed("cannot open %s: %v", s.SevGuest, unwrap(err))
	}
	defer device.Close()
	err = s.Ioctl(device.Fd(), SnpGetReport, unsafe.Pointer(&argument[0]))
	// The buffers' addresses went to the kernel as integers: keep them alive until it is done.
	keep(request, response)
	if err != nil {
		detail := ""
		if errors.Is(err, unix.EIO) {
			detail = fmt.Sprintf(" (firmware error %#x)", binary.LittleEndian.Uint64(argument[24:]))
		}
		return nil, failed("SNP_GET_REPORT failed: %v%s", err, detail)
	}
	status, size := binary.LittleEndian.Uint32(response[0:]), binary.LittleEndian.Uint32(response[4:])
	if status != 0 || size != snpReportSize {
		return nil, failed("the firmware answered status %#x with a %d-byte report", status, size)
	}
	return append([]byte{}, response[snpReportOffset:snpReportOffset+snpReportSize]...), nil
}

//go:noinline
func keep(...[]byte) {}

// VtpmEvidence is an Azure confidential VM's HCL report, its PCRs, and a quote over them with binding.
func (s *Sources) VtpmEvidence(binding []byte) (map[string]any, error) {
	open := s.OpenTpm
	if open == nil {
		open = func() (Transport, error) { return OpenDevice(s.TpmDevice) }
	}
	transport, err := open()
	if err != nil {
		return nil, failed("%v", err)
	}
	defer transport.Close()
	tpm := &Tpm{transport}
	hint := func(err error) error { return failed("vTPM: %v (is this an Azure confidential VM?)", err) }
	hcl, err := tpm.NvRead(hclReportNvIndex)
	if err != nil {
		return nil, hint(err)
	}
	pcrs, err := tpm.PcrRead(QuotedPcrs)
	if err != nil {
		return nil, hint(err)
	}
	quote, signature, err := tpm.Quote(attestationKey, binding, QuotedPcrs)
	if err != nil {
		return nil, hint(err)
	}
	values := map[string]any{}
	for index, value := range pcrs {
		values[strconv.Itoa(index)] = hex.EncodeToString(value)
	}
	evidence := map[string]any{"kind": protocol.AzureCvm, "hcl_report": b64(hcl), "quote": b64(quote),
		"signature": b64(signature), "pcrs": values}
	if s.AzureImds != "" {
		for name, value := range s.fromImds(hcl) {
			evidence[name] = value
		}
	}
	return evidence, nil
}

// fromImds is what Azure's instance metadata service adds: the VCEK of an SEV-SNP VM, the TD quote of a
// TDX VM. Neither is trusted for itself: the CAS verifies the VCEK's chain and the quote's. Without the
// service (not on Azure) there is nothing to add.
func (s *Sources) fromImds(hcl []byte) map[string]string {
	reportType := uint32(0)
	if len(hcl) >= reportTypeOffset+4 {
		reportType = binary.LittleEndian.Uint32(hcl[reportTypeOffset:])
	}
	var out map[string]string
	var err error
	switch reportType {
	case reportTypeSnp:
		var answer map[string]any
		if answer, err = s.imds("GET", "/metadata/THIM/amd/certification", nil); err == nil {
			vcek, _ := answer["vcekCert"].(string)
			chain, _ := answer["certificateChain"].(string)
			if vcek+chain != "" {
				out = map[string]string{"vcek": b64([]byte(vcek + chain))}
			}
		}
	case reportTypeTdx:
		td := hcl[hclHeaderSize : hclHeaderSize+tdReportSize]
		request := map[string]string{"report": base64.RawURLEncoding.EncodeToString(td)}
		var answer map[string]any
		if answer, err = s.imds("POST", "/acc/tdquote", request); err == nil {
			text, _ := answer["quote"].(string)
			var quote []byte
			if quote, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(text, "=")); err == nil {
				out = map[string]string{"td_quote": b64(quote)}
			}
		}
	}
	if err != nil {
		// Not fatal: a CAS with a VCEK cache (cas serve --snp-vcek-dir) needs nothing more.
		fmt.Fprintf(os.Stderr, "[SCONIFY|WARNING] Azure's metadata service did not answer (%v): the evidence goes "+
			"without the VCEK or TD quote it would add\n", err)
	}
	return out
}

func (s *Sources) imds(method, path string, body any) (map[string]any, error) {
	host := s.AzureImds
	if !strings.Contains(host, ":") {
		host = net.JoinHostPort(host, "80")
	}
	var reader io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		reader = bytes.NewReader(data)
	}
	request, err := http.NewRequest(method, "http://"+host+path, reader)
	if err != nil {
		return nil, err
	}
	request.Header.Set("Metadata", "true")
	if body != nil {
		request.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: imdsTimeout, Transport: &http.Transport{Proxy: nil}}
	response, err := client.Do(request)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	data, err := io.ReadAll(io.LimitReader(response.Body, maxImdsAnswer+1))
	if err != nil {
		return nil, err
	}
	if response.StatusCode != 200 || len(data) > maxImdsAnswer {
		return nil, fmt.Errorf("%s %s: status %d", method, path, response.StatusCode)
	}
	var answer map[string]any
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, fmt.Errorf("%s %s: not a JSON object", method, path)
	}
	return answer, nil
}
