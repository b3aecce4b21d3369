package remotereg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/nrpc/logon/v1"
	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ndr"
)

// The tests in this file replay DCE/RPC responses that real Windows sent
// (testdata/windows/README.md names each capture and frame) to the SDK's
// client paths: a loopback listener answers the client's bind, then answers
// each request with the next captured response PDU, its call ID and
// context ID patched to the request's. The expected values were read from
// Wireshark's dissection of the captures.

// PDU types and the header offsets the replay server touches (C706 12.6).
const (
	ptRequest  = 0
	ptResponse = 2
	ptBind     = 11
	ptBindAck  = 12
	ptAlter    = 14
	ptAlterAck = 15
)

var ndr20Syntax = []byte{0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60, 2, 0, 0, 0}

// bindTimeFeature is the first 8 bytes of the bind-time feature
// negotiation "transfer syntax" 6cb71c2c-9812-4540-... (MS-RPCE 3.3.1.5.3).
var bindTimeFeature = []byte{0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45}

func winVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bindAckFor answers a bind or alter_context the way the captured Windows
// endpoints do: NDR 2.0 accepted, bind-time feature negotiation
// acknowledged (reason 3, as in the captured bind_acks), anything else
// (NDR64) rejected with "proposed transfer syntaxes not supported".
func bindAckFor(req []byte) ([]byte, error) {
	if len(req) < 28 {
		return nil, errors.New("bind too short")
	}
	n := int(req[24])
	off := 28
	var results []byte
	for i := 0; i < n; i++ {
		if off+24 > len(req) {
			return nil, errors.New("bind context list truncated")
		}
		ntx := int(req[off+2])
		if off+24+20*ntx > len(req) || ntx == 0 {
			return nil, errors.New("bind transfer syntaxes truncated")
		}
		tx := req[off+24 : off+44]
		r := make([]byte, 24)
		switch {
		case bytes.Equal(tx, ndr20Syntax):
			copy(r[4:], ndr20Syntax)
		case bytes.Equal(tx[:8], bindTimeFeature):
			binary.LittleEndian.PutUint16(r[0:], 3) // negotiate_ack
			binary.LittleEndian.PutUint16(r[2:], 3) // as Windows answers
		default:
			binary.LittleEndian.PutUint16(r[0:], 2) // provider_rejection
			binary.LittleEndian.PutUint16(r[2:], 2) // proposed_transfer_syntaxes_not_supported
		}
		results = append(results, r...)
		off += 24 + 20*ntx
	}
	typ := byte(ptBindAck)
	body := []byte{0xb8, 0x10, 0xb8, 0x10, 0x11, 0x22, 0, 0} // max xmit/recv 4280, assoc group
	if req[2] == ptAlter {
		typ = ptAlterAck
		body = append(body, 0, 0) // empty secondary address
	} else {
		body = append(body, 4, 0, '1', '3', '5', 0)
	}
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	body = append(body, byte(n), 0, 0, 0)
	body = append(body, results...)
	pdu := append([]byte{5, 0, typ, 3, 0x10, 0, 0, 0, 0, 0, 0, 0}, req[12:16]...)
	pdu = append(pdu, body...)
	binary.LittleEndian.PutUint16(pdu[8:], uint16(len(pdu)))
	return pdu, nil
}

// replayServer serves one connection at a time on loopback. It answers
// binds itself and each request with the next of responses. It records the
// requests it saw.
type replayServer struct {
	t         testing.TB
	ln        net.Listener
	mu        sync.Mutex
	responses [][]byte
	requests  [][]byte
	wg        sync.WaitGroup
}

func startReplay(t testing.TB, responses ...[]byte) *replayServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &replayServer{t: t, ln: ln, responses: responses}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *replayServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *replayServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if err := s.serve(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.t.Errorf("replay server: %v", err)
			}
		}()
	}
}

func (s *replayServer) serve(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	for {
		pdu, err := readRawPDU(c)
		if err != nil {
			return err
		}
		var out []byte
		switch pdu[2] {
		case ptBind, ptAlter:
			var err error
			if out, err = bindAckFor(pdu); err != nil {
				return err
			}
		case ptRequest:
			s.mu.Lock()
			s.requests = append(s.requests, pdu)
			if len(s.responses) == 0 {
				s.mu.Unlock()
				return fmt.Errorf("request opnum %d beyond the replayed responses", binary.LittleEndian.Uint16(pdu[22:]))
			}
			out = append([]byte(nil), s.responses[0]...)
			s.responses = s.responses[1:]
			s.mu.Unlock()
			copy(out[12:16], pdu[12:16]) // call_id
			copy(out[20:22], pdu[20:22]) // p_cont_id
		default:
			return fmt.Errorf("unexpected PDU type %d", pdu[2])
		}
		if _, err := c.Write(out); err != nil {
			return err
		}
	}
}

// readRawPDU reads one connection-oriented DCE/RPC fragment.
func readRawPDU(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint16(hdr[8:]))
	if n < 16 {
		return nil, fmt.Errorf("fragment length %d", n)
	}
	pdu := append(hdr, make([]byte, n-16)...)
	if _, err := io.ReadFull(r, pdu[16:]); err != nil {
		return nil, err
	}
	return pdu, nil
}

// seen returns the opnums of the requests received so far.
func (s *replayServer) seen() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ops []uint16
	for _, r := range s.requests {
		ops = append(ops, binary.LittleEndian.Uint16(r[22:]))
	}
	return ops
}

// stub returns the stub data of a request or response PDU (no auth
// trailer: these are unauthenticated).
func pduStub(pdu []byte) []byte { return pdu[24:] }

func replayCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestWindowsEptMapReplay replays Windows' ept_map responses to the
// launcher's endpoint-mapper client (mapTCP), which must read the port
// that Windows announced.
func TestWindowsEptMapReplay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		syntax   *dcerpc.SyntaxID
		response string
		request  string // the Windows client's request, for comparison
		port     int
	}{
		{"server2016 svcctl", svcctl.SvcctlSyntaxV2_0, "epm_server2016_map_svcctl_response.bin", "epm_server2016_map_svcctl_request.bin", 49688},
		{"dc1 svcctl", svcctl.SvcctlSyntaxV2_0, "epm_dc1_map_svcctl_response.bin", "epm_dc1_map_svcctl_request.bin", 49163},
		// The client here is not Windows (a zerologon test tool), so its
		// request is not compared.
		{"server2019 netlogon", logon.LogonSyntaxV1_0, "epm_server2019_map_netlogon_response.bin", "", 49668},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startReplay(t, winVector(t, tc.response))
			l := &Launcher{EPMPort: srv.port()}
			port, err := l.mapTCP(replayCtx(t), "127.0.0.1", tc.syntax)
			if err != nil {
				t.Fatal(err)
			}
			if port != tc.port {
				t.Errorf("port %d, want %d", port, tc.port)
			}
			if ops := srv.seen(); len(ops) != 1 || ops[0] != 3 {
				t.Fatalf("requests %v, want one ept_map (3)", ops)
			}
			if tc.request == "" {
				return
			}
			// Our request asks what the Windows client asked: the same
			// object, interface, transfer syntax and protocol floors, a
			// null entry handle and up to 4 towers. Windows' client also
			// fills in port 135 and the server's address in the last two
			// floors, where we send zeros (the server ignores them).
			srv.mu.Lock()
			ours := decodeMapRequest(t, srv.requests[0])
			srv.mu.Unlock()
			theirs := decodeMapRequest(t, winVector(t, tc.request))
			if ours.Object.UUID().String() != theirs.Object.UUID().String() || ours.MaxTowers != theirs.MaxTowers ||
				handleHex(ours.EntryHandle.Attributes, ours.EntryHandle.UUID) != handleHex(theirs.EntryHandle.Attributes, theirs.EntryHandle.UUID) {
				t.Errorf("map request: ours %+v, Windows' %+v", ours, theirs)
			}
			of, tf := ours.MapTower.Floors(), theirs.MapTower.Floors()
			if len(of) != 5 || len(tf) != 5 {
				t.Fatalf("towers of %d and %d floors", len(of), len(tf))
			}
			for i := range of {
				same := of[i].Protocol == tf[i].Protocol && of[i].VersionMajor == tf[i].VersionMajor &&
					fmt.Sprint(of[i].UUID) == fmt.Sprint(tf[i].UUID) && len(of[i].Data) == len(tf[i].Data)
				if i < 3 {
					same = same && bytes.Equal(of[i].Data, tf[i].Data)
				}
				if !same {
					t.Errorf("floor %d: ours %+v, Windows' %+v", i+1, of[i], tf[i])
				}
			}
		})
	}
}

func decodeMapRequest(t *testing.T, pdu []byte) *epm.MapRequest {
	t.Helper()
	var req epm.MapRequest
	if err := req.UnmarshalNDR(context.Background(), ndr.NDR20(pduStub(pdu))); err != nil {
		t.Fatalf("decode ept_map request: %v", err)
	}
	if req.Object == nil || req.MapTower == nil || req.EntryHandle == nil {
		t.Fatalf("ept_map request without object, tower or handle: %+v", req)
	}
	return &req
}

// contextHandle writes a context handle as it travels (attributes, then
// the GUID in its little-endian wire form) in hex, as Wireshark shows it.
func handleHex(attr uint32, g *dtyp.GUID) string {
	if g == nil {
		return "nil"
	}
	b := binary.LittleEndian.AppendUint32(nil, attr)
	b = binary.LittleEndian.AppendUint32(b, g.Data1)
	b = binary.LittleEndian.AppendUint16(b, g.Data2)
	b = binary.LittleEndian.AppendUint16(b, g.Data3)
	return fmt.Sprintf("%x", append(b, g.Data4...))
}

func handleBytes(h *svcctl.Handle) string {
	if h == nil {
		return "nil"
	}
	return handleHex(h.Attributes, h.UUID)
}

// dialReplay binds iface's client on a replay server, without security,
// as the captured Windows clients bound these pipes.
func dialReplay(t *testing.T, srv *replayServer) dcerpc.Conn {
	t.Helper()
	ctx := replayCtx(t)
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:127.0.0.1["+strconv.Itoa(srv.port())+"]", dcerpc.WithNewTransport())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close(context.Background()) })
	return cc
}

// TestWindowsSvcctlReplay replays Server 2008 R2 SP1's answers to a
// service install (OpenSCManagerW, OpenServiceW of a missing service,
// CreateServiceW, StartServiceW failing with 1053, CloseServiceHandle,
// then OpenServiceW and DeleteService) through the launcher's SCM helpers.
func TestWindowsSvcctlReplay(t *testing.T) {
	v := func(s string) []byte { return winVector(t, "svcctl_2008r2_"+s+"_response.bin") }
	srv := startReplay(t, v("open_scm"), v("open_service_missing"), v("create_service"), v("start_service"),
		v("close_service"), v("open_service"), v("delete_service"))
	ctx := replayCtx(t)
	cli, err := svcctl.NewSvcctlClient(ctx, dialReplay(t, srv), dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	m, err := openSCM(ctx, cli, scManagerCreateService|scManagerConnect)
	if err != nil {
		t.Fatal(err)
	}
	if got := handleBytes(m.mgr); got != "0000000005d85b8b8e8e7048944719f9ae414e2d" {
		t.Errorf("SCM handle %s", got)
	}
	if _, err := m.open(ctx, "lcapplet-x", serviceStart); !errors.Is(err, Win32Error(1060)) {
		t.Errorf("OpenServiceW of a missing service: %v, want ERROR_SERVICE_DOES_NOT_EXIST (1060)", err)
	}
	h, err := m.create(ctx, "lcapplet-x", "lcapplet-x", `C:\Windows\lcapplet-x.exe`, StartDemand)
	if err != nil {
		t.Fatal(err)
	}
	if got := handleBytes(h); got != "00000000fea772b927f7414faa60a357b7433111" {
		t.Errorf("service handle %s", got)
	}
	if err := m.start(ctx, h); !errors.Is(err, Win32Error(1053)) {
		t.Errorf("StartServiceW: %v, want ERROR_SERVICE_REQUEST_TIMEOUT (1053)", err)
	}
	m.closeService(ctx, h)
	h, err = m.open(ctx, "lcapplet-x", accessDelete)
	if err != nil {
		t.Fatal(err)
	}
	if got := handleBytes(h); got != "0000000079b4ca2e8dc37f459e60699e0eb975c2" {
		t.Errorf("reopened service handle %s", got)
	}
	if err := m.delete(ctx, h); err != nil {
		t.Errorf("DeleteService: %v", err)
	}
	want := []uint16{15, 16, 12, 19, 0, 16, 2}
	if got := srv.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("opnums %v, want %v", got, want)
	}
}

// TestWindowsSvcctlQueryStatusReplay replays a domain controller's answers
// to PsExec (OpenSCManagerW, StartServiceW, QueryServiceStatus) through the
// launcher's SCM helpers.
func TestWindowsSvcctlQueryStatusReplay(t *testing.T) {
	v := func(s string) []byte { return winVector(t, "svcctl_dc1_"+s+"_response.bin") }
	srv := startReplay(t, v("open_scm"), v("start_service"), v("query_status"))
	ctx := replayCtx(t)
	cli, err := svcctl.NewSvcctlClient(ctx, dialReplay(t, srv), dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	m, err := openSCM(ctx, cli, scManagerConnect)
	if err != nil {
		t.Fatal(err)
	}
	h := &svcctl.Handle{UUID: m.mgr.UUID} // any handle: the replay does not check it
	if err := m.start(ctx, h); err != nil {
		t.Fatalf("StartServiceW: %v", err)
	}
	st, err := m.status(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.ServiceType != 0x10 || State(st.CurrentState) != StateStartPending || st.ControlsAccepted != 0 ||
		st.Win32ExitCode != 0 || st.ServiceSpecificExitCode != 0 || st.CheckPoint != 1 || st.WaitHint != 3000 {
		t.Errorf("status %+v", st)
	}
}

// TestWindowsCreateServiceWOW64Response decodes the answer to PsExec's
// CreateServiceWOW64W (opnum 45), which the SDK does not call, with
// go-msrpc's generated response type: the layout is CreateServiceW's.
func TestWindowsCreateServiceWOW64Response(t *testing.T) {
	var resp svcctl.CreateServiceWOW64WResponse
	if err := resp.UnmarshalNDR(context.Background(), ndr.NDR20(pduStub(winVector(t, "svcctl_dc1_create_service_wow64_response.bin")))); err != nil {
		t.Fatal(err)
	}
	if resp.Return != 0 || resp.TagID != 0 || handleBytes(resp.Service) != "00000000bd51a120f02e5845a493650a0ffb75be" {
		t.Errorf("response %+v handle %s", resp, handleBytes(resp.Service))
	}
}

// TestWindowsWinregReplay replays OpenHKLM, OpenKey and SetValue answers
// through the launcher's registry helpers.
func TestWindowsWinregReplay(t *testing.T) {
	v := func(s string) []byte { return winVector(t, "winreg_"+s+"_response.bin") }
	srv := startReplay(t, v("open_hklm"), v("open_key"), v("set_value"))
	ctx := replayCtx(t)
	cli, err := winreg.NewWinregClient(ctx, dialReplay(t, srv), dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	hklm, err := openHKLM(ctx, cli, 0x02000000)
	if err != nil {
		t.Fatal(err)
	}
	keyStr := func(k *winreg.Key) string {
		if k == nil {
			return "nil"
		}
		return handleHex(k.Attributes, k.UUID)
	}
	if got := keyStr(hklm); got != "00000000f672289cf057d811b005000c2987eae9" {
		t.Errorf("HKLM handle %s", got)
	}
	run, err := openKey(ctx, cli, hklm, `SOFTWARE\Microsoft\Windows\CurrentVersion\Run`, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyStr(run); got != "00000000f772289cf057d811b005000c2987eae9" {
		t.Errorf("Run key handle %s", got)
	}
	resp, err := cli.BaseRegSetValue(ctx, &winreg.BaseRegSetValueRequest{Key: run, ValueName: ustr("Osa32"), Type: regSZ, Data: encodeUTF16Z("NTOSA32.EXE")})
	if err != nil || resp.Return != 0 {
		t.Errorf("SetValue: %v %+v", err, resp)
	}
	if got := srv.seen(); fmt.Sprint(got) != "[2 15 22]" {
		t.Errorf("opnums %v", got)
	}
}
