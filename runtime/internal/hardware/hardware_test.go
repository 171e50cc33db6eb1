package hardware

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pulumi-sconify/pulumi-sconify/runtime/internal/protocol"
)

// A configfs-tsm report directory laid out as Documentation/ABI/testing/configfs-tsm describes it, made for
// this process's entry: provider, generation, outblob and auxblob; the runtime writes inblob.
func fakeTsm(t *testing.T, provider string) (string, string) {
	dir := t.TempDir()
	entry := filepath.Join(dir, fmt.Sprintf("sconify-%d", os.Getpid()))
	files := map[string]string{"provider": provider + "\n", "generation": "7\n", "outblob": "REPORT", "auxblob": "CERTS"}
	if err := os.Mkdir(entry, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(entry, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, entry
}

func TestAnSnpReportFromConfigfsTsmIsBoundToTheAttestation(t *testing.T) {
	dir, entry := fakeTsm(t, "sev_guest")
	sources := &Sources{TsmReports: dir, SevGuest: "/nonexistent", TpmDevice: "/nonexistent"}
	if kinds := sources.Available(); len(kinds) != 1 || kinds[0] != protocol.SevSnp {
		t.Fatalf("available: %v", kinds)
	}
	binding := bytes.Repeat([]byte{0xab}, 32)
	evidence, err := sources.Collect(protocol.SevSnp, binding)
	if err != nil {
		t.Fatal(err)
	}
	written, _ := os.ReadFile(filepath.Join(entry, "inblob"))
	if !bytes.Equal(written, protocol.HardwareReportData(binding)) {
		t.Errorf("inblob: %x", written)
	}
	if evidence["report"] != base64.StdEncoding.EncodeToString([]byte("REPORT")) ||
		evidence["certificates"] != base64.StdEncoding.EncodeToString([]byte("CERTS")) {
		t.Errorf("%v", evidence)
	}
}

func TestATdxNodeGivesAQuote(t *testing.T) {
	dir, _ := fakeTsm(t, "tdx_guest")
	sources := &Sources{TsmReports: dir, SevGuest: "/nonexistent", TpmDevice: "/nonexistent"}
	if kinds := sources.Available(); len(kinds) != 1 || kinds[0] != protocol.Tdx {
		t.Fatalf("available: %v", kinds)
	}
	evidence, err := sources.Collect(protocol.Tdx, make([]byte, 32))
	if err != nil || evidence["quote"] != base64.StdEncoding.EncodeToString([]byte("REPORT")) || evidence["kind"] != protocol.Tdx {
		t.Errorf("%v %v", evidence, err)
	}
}

func TestANodeWithoutATeeOffersNothing(t *testing.T) {
	sources := &Sources{TsmReports: "/nonexistent", SevGuest: "/nonexistent", TpmDevice: "/nonexistent"}
	if kinds := sources.Available(); len(kinds) != 0 {
		t.Errorf("%v", kinds)
	}
	if _, err := sources.Collect(protocol.Tdx, make([]byte, 32)); err == nil || !strings.Contains(err.Error(), "cannot give tdx") {
		t.Errorf("%v", err)
	}
}

// The SNP_GET_REPORT ioctl as include/uapi/linux/sev-guest.h lays it out: the request's user data in, a
// MSG_REPORT_RSP (status, size, reserved, report) out, the firmware's error in exitinfo2.
func fakeSevGuest(status uint32, errno unix.Errno) Ioctl {
	return func(_ uintptr, request uintptr, argument unsafe.Pointer) error {
		if request != SnpGetReport {
			return unix.ENOTTY
		}
		arg := unsafe.Slice((*byte)(argument), 32)
		// The struct holds the buffers' addresses as the kernel reads them: pointer-sized words at 8 and 16.
		requestBuffer := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Add(argument, 8))), 96)
		response := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Add(argument, 16))), snpResponseSize)
		if errno != 0 {
			binary.LittleEndian.PutUint64(arg[24:], 0x27)
			return errno
		}
		binary.LittleEndian.PutUint32(response[0:], status)
		binary.LittleEndian.PutUint32(response[4:], snpReportSize)
		copy(response[snpReportOffset+0x50:], requestBuffer[:64]) // REPORT_DATA sits at 0x50 of the report
		return nil
	}
}

func TestAnSnpReportFromDevSevGuestCarriesTheReportData(t *testing.T) {
	device := filepath.Join(t.TempDir(), "sev-guest")
	if err := os.WriteFile(device, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sources := &Sources{TsmReports: "/nonexistent", SevGuest: device, TpmDevice: "/nonexistent", Ioctl: fakeSevGuest(0, 0)}
	binding := bytes.Repeat([]byte{0x5a}, 32)
	evidence, err := sources.Collect(protocol.SevSnp, binding)
	if err != nil {
		t.Fatal(err)
	}
	report, _ := base64.StdEncoding.DecodeString(evidence["report"].(string))
	if len(report) != snpReportSize || !bytes.Equal(report[0x50:0x90], protocol.HardwareReportData(binding)) {
		t.Errorf("report data not in the report")
	}
	sources.Ioctl = fakeSevGuest(0, unix.EIO)
	if _, err := sources.Collect(protocol.SevSnp, binding); err == nil || !strings.Contains(err.Error(), "firmware error 0x27") {
		t.Errorf("%v", err)
	}
	sources.Ioctl = fakeSevGuest(0x16, 0)
	if _, err := sources.Collect(protocol.SevSnp, binding); err == nil || !strings.Contains(err.Error(), "status 0x16") {
		t.Errorf("%v", err)
	}
}
