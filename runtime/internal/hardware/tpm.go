package hardware

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
)

// Just enough of a TPM 2.0 client to collect an Azure confidential VM's evidence: read an NV index (the
// HCL report), read PCRs, and quote them with the vTPM's attestation key. Commands are marshalled as the
// TCG's "TPM 2.0 Library, Part 3" defines them (engine/runtime/tpm.py is the same client in Python).
const (
	tpmStNoSessions   = 0x8001
	tpmStSessions     = 0x8002
	tpmCcNvRead       = 0x0000014E
	tpmCcQuote        = 0x00000158
	tpmCcNvReadPublic = 0x00000169
	tpmCcPcrRead      = 0x0000017E
	tpmRsPw           = 0x40000009
	tpmRhOwner        = 0x40000001
	tpmAlgSha256      = 0x000B
	tpmAlgNull        = 0x0010
	tpmAlgRsassa      = 0x0014
	tpmAlgRsapss      = 0x0016
	tpmAlgEcdsa       = 0x0018
	tpmaNvAuthread    = 1 << 18
	nvChunk           = 1024
	maxTpmResponse    = 8192
	maxRetries        = 100
	// TpmDevice is the kernel's resource manager.
	TpmDevice = "/dev/tpmrm0"
)

var retryCodes = map[uint32]bool{0x908: true, 0x90A: true, 0x922: true}

// TpmError is a TPM's refusal or a failure to reach it.
type TpmError struct{ Message string }

func (e *TpmError) Error() string { return e.Message }

// Transport carries one command and its response.
type Transport interface {
	Exchange(command []byte) ([]byte, error)
	Close() error
}

type deviceTransport struct{ file *os.File }

// OpenDevice opens the kernel's TPM device: a write is one command, a read its whole response.
func OpenDevice(path string) (Transport, error) {
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, &TpmError{fmt.Sprintf("cannot open %s: %v", path, unwrap(err))}
	}
	return deviceTransport{file}, nil
}

func (t deviceTransport) Exchange(command []byte) ([]byte, error) {
	if _, err := t.file.Write(command); err != nil {
		return nil, err
	}
	response := make([]byte, maxTpmResponse)
	n, err := t.file.Read(response)
	return response[:n], err
}

func (t deviceTransport) Close() error { return t.file.Close() }

type socketTransport struct{ conn net.Conn }

// DialSocket reaches a TPM simulator's command socket (swtpm's --server): the same bytes over a stream.
func DialSocket(address string) (Transport, error) {
	conn, err := net.Dial("tcp", address)
	if err != nil {
		return nil, &TpmError{fmt.Sprintf("cannot reach the TPM at %s: %v", address, err)}
	}
	return socketTransport{conn}, nil
}

func (t socketTransport) Exchange(command []byte) ([]byte, error) {
	if _, err := t.conn.Write(command); err != nil {
		return nil, err
	}
	header := make([]byte, 10)
	if _, err := io.ReadFull(t.conn, header); err != nil {
		return nil, &TpmError{"the TPM closed the connection"}
	}
	size := binary.BigEndian.Uint32(header[2:])
	if size < 10 || size > maxTpmResponse {
		return nil, &TpmError{fmt.Sprintf("the TPM answered with a size of %d", size)}
	}
	rest := make([]byte, size-10)
	if _, err := io.ReadFull(t.conn, rest); err != nil {
		return nil, &TpmError{"the TPM closed the connection"}
	}
	return append(header, rest...), nil
}

func (t socketTransport) Close() error { return t.conn.Close() }

// reader reads TPM structures (big-endian integers, TPM2B sized buffers).
type reader struct {
	data   []byte
	offset int
	what   string
	err    error
}

func (r *reader) take(count int) []byte {
	if r.err != nil || r.offset+count > len(r.data) {
		if r.err == nil {
			r.err = &TpmError{r.what + " ends early"}
		}
		return make([]byte, count)
	}
	chunk := r.data[r.offset : r.offset+count]
	r.offset += count
	return chunk
}

func (r *reader) u8() int     { return int(r.take(1)[0]) }
func (r *reader) u16() int    { return int(binary.BigEndian.Uint16(r.take(2))) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) sized() []byte {
	return r.take(r.u16())
}

func sized(data []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(data))), data...)
}

func pcrSelection(indexes []int) []byte {
	bitmap := make([]byte, 3)
	for _, index := range indexes {
		bitmap[index/8] |= 1 << (index % 8)
	}
	out := binary.BigEndian.AppendUint32(nil, 1)
	out = binary.BigEndian.AppendUint16(out, tpmAlgSha256)
	out = append(out, 3)
	return append(out, bitmap...)
}

// The empty password: what the vTPM's HCL index and attestation key are used with.
var passwordSession = []byte{0x40, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0}

// Tpm is a TPM reached through a Transport.
type Tpm struct{ Transport Transport }

func (t *Tpm) command(code uint32, handles []uint32, parameters []byte, authorised bool) (*reader, error) {
	var body []byte
	for _, handle := range handles {
		body = binary.BigEndian.AppendUint32(body, handle)
	}
	if authorised {
		body = binary.BigEndian.AppendUint32(body, uint32(len(passwordSession)))
		body = append(body, passwordSession...)
	}
	body = append(body, parameters...)
	tag := uint16(tpmStNoSessions)
	if authorised {
		tag = tpmStSessions
	}
	command := binary.BigEndian.AppendUint16(nil, tag)
	command = binary.BigEndian.AppendUint32(command, uint32(10+len(body)))
	command = binary.BigEndian.AppendUint32(command, code)
	command = append(command, body...)
	var response *reader
	var size, status uint32
	for range maxRetries {
		data, err := t.Transport.Exchange(command)
		if err != nil {
			return nil, &TpmError{fmt.Sprintf("the TPM could not be reached: %v", err)}
		}
		response = &reader{data: data, what: "the TPM's response"}
		response.u16()
		size, status = response.u32(), response.u32()
		if response.err != nil {
			return nil, response.err
		}
		if !retryCodes[status] {
			break
		}
	}
	if status != 0 {
		return nil, &TpmError{fmt.Sprintf("the TPM refused command %#x with response code %#x", code, status)}
	}
	if int(size) != len(response.data) {
		return nil, &TpmError{"the TPM's response is not the size it says"}
	}
	if authorised {
		response.u32() // parameterSize: the authorisation area follows the parameters
	}
	return response, nil
}

// NvRead is the whole content of an NV index.
func (t *Tpm) NvRead(index uint32) ([]byte, error) {
	public, err := t.command(tpmCcNvReadPublic, []uint32{index}, nil, false)
	if err != nil {
		return nil, err
	}
	area := &reader{data: public.sized(), what: "the NV index's public area"}
	area.u32() // nvIndex
	area.u16() // nameAlg
	attributes := area.u32()
	area.sized() // authPolicy
	size := area.u16()
	if area.err != nil || public.err != nil {
		return nil, &TpmError{"the NV index's public area ends early"}
	}
	authority := uint32(tpmRhOwner)
	if attributes&tpmaNvAuthread != 0 {
		authority = index
	}
	var data []byte
	for len(data) < size {
		count := min(nvChunk, size-len(data))
		parameters := binary.BigEndian.AppendUint16(nil, uint16(count))
		parameters = binary.BigEndian.AppendUint16(parameters, uint16(len(data)))
		response, err := t.command(tpmCcNvRead, []uint32{authority, index}, parameters, true)
		if err != nil {
			return nil, err
		}
		chunk := response.sized()
		if response.err != nil || len(chunk) == 0 {
			return nil, &TpmError{"the TPM returned no NV data"}
		}
		data = append(data, chunk...)
	}
	return data, nil
}

// PcrRead is the SHA-256 bank's values of indexes (the TPM answers at most eight per command).
func (t *Tpm) PcrRead(indexes []int) (map[int][]byte, error) {
	wanted := append([]int{}, indexes...)
	sort.Ints(wanted)
	values := map[int][]byte{}
	for len(wanted) > 0 {
		response, err := t.command(tpmCcPcrRead, nil, pcrSelection(wanted), false)
		if err != nil {
			return nil, err
		}
		response.u32() // pcrUpdateCounter
		var returned []int
		for range response.u32() {
			response.u16()
			bitmap := response.take(response.u8())
			for i := range len(bitmap) * 8 {
				if bitmap[i/8]&(1<<(i%8)) != 0 {
					returned = append(returned, i)
				}
			}
		}
		count := int(response.u32())
		if response.err != nil || len(returned) == 0 || count != len(returned) {
			return nil, &TpmError{"the TPM returned no PCR values for the selection"}
		}
		for _, index := range returned {
			values[index] = response.sized()
		}
		if response.err != nil {
			return nil, response.err
		}
		var rest []int
		for _, index := range wanted {
			if _, ok := values[index]; !ok {
				rest = append(rest, index)
			}
		}
		wanted = rest
	}
	return values, nil
}

// Quote is a quote by key over indexes (SHA-256 bank) with qualifying data: the signed TPMS_ATTEST and
// its TPMT_SIGNATURE.
func (t *Tpm) Quote(key uint32, qualifying []byte, indexes []int) ([]byte, []byte, error) {
	parameters := append(sized(qualifying), binary.BigEndian.AppendUint16(nil, tpmAlgNull)...)
	parameters = append(parameters, pcrSelection(indexes)...)
	response, err := t.command(tpmCcQuote, []uint32{key}, parameters, true)
	if err != nil {
		return nil, nil, err
	}
	attest := response.sized()
	start := response.offset
	algorithm := response.u16()
	if algorithm == tpmAlgNull {
		return nil, nil, &TpmError{"the attestation key has no signing scheme"}
	}
	response.u16() // hash
	switch algorithm {
	case tpmAlgRsassa, tpmAlgRsapss:
		response.sized()
	case tpmAlgEcdsa:
		response.sized()
		response.sized()
	default:
		return nil, nil, &TpmError{fmt.Sprintf("the attestation key signs with scheme %#x", algorithm)}
	}
	if response.err != nil {
		return nil, nil, response.err
	}
	return attest, response.data[start:response.offset], nil
}
