package winemu_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcetypes"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

func svcctlTower() *dcetypes.Tower { return towerOf(svcctl.SvcctlSyntaxV2_0) }

// towerOf is the ept_map query tower of interface s over ncacn_ip_tcp.
func towerOf(s *dcerpc.SyntaxID) *dcetypes.Tower {
	return dcetypes.FloorsToTower([]*dcetypes.Floor{
		{Protocol: uint8(dcetypes.ProtocolUUID), UUID: s.IfUUID, VersionMajor: s.IfVersionMajor, Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolUUID), UUID: dcerpc.TransferNDR, VersionMajor: 2, Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolRPC_CO), Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolTCP), Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolIP), Data: []byte{0, 0, 0, 0}},
	})
}

// TestEndpointMapperMap calls ept_map directly, with and without NTLM.
func TestEndpointMapperMap(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ep, ok := e.srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	if !ok || ep.Addr.Port() == 135 || ep.Addr.Port() == 0 {
		t.Fatalf("svcctl endpoint = %+v, %v", ep, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, sec := range []struct {
		name string
		opts []dcerpc.Option
	}{
		{"anonymous", []dcerpc.Option{dcerpc.WithInsecure()}},
		{"seal", []dcerpc.Option{dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(plainUser, plainPass))}},
		// Windows clients append a verification trailer (MS-RPCE 2.2.2.13)
		// to the stub; the server must ignore it.
		{"seal+verification-trailer", []dcerpc.Option{dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(plainUser, plainPass)),
			dcerpc.WithVerifyBitMask(true), dcerpc.WithVerifyPresentation(true), dcerpc.WithVerifyHeader2(true)}},
	} {
		t.Run(sec.name, func(t *testing.T) {
			cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip+"[135]")
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close(ctx)
			cli, err := epm.NewEpmClient(ctx, cc, sec.opts...)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := cli.Map(ctx, &epm.MapRequest{MapTower: svcctlTower(), MaxTowers: 4})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 0 || len(resp.Towers) != 1 {
				t.Fatalf("ept_map: status %#x, %d towers", resp.Status, len(resp.Towers))
			}
			b := resp.Towers[0].Binding()
			if b.StringBinding.NetworkAddress != e.ip || b.StringBinding.Endpoint != strconv.Itoa(int(ep.Addr.Port())) {
				t.Fatalf("ept_map tower = %s, want %s", b.StringBinding.String(), ep.Addr)
			}
			if !b.SyntaxID.IfUUID.Equals(svcctl.SvcctlSyntaxV2_0.IfUUID) {
				t.Fatalf("tower interface = %s", b.SyntaxID.IfUUID)
			}
			// An interface nobody serves is not registered.
			unknown := svcctlTower()
			floors := unknown.Floors()
			floors[0].UUID = winreg.WinregSyntaxV1_0.IfUUID
			floors[0].VersionMajor = 1
			resp, _ = cli.Map(ctx, &epm.MapRequest{MapTower: dcetypes.FloorsToTower(floors), MaxTowers: 4})
			if resp == nil || resp.Status != 0x16c9a0d6 || len(resp.Towers) != 0 {
				t.Fatalf("ept_map(winreg) = %+v", resp)
			}
		})
	}
}

// TestServeExplicitListener serves a listener the caller opened and
// dials it with an explicit port (no endpoint mapper).
func TestServeExplicitListener(t *testing.T) {
	checkLeaks(t)
	srv := &winemu.Server{Users: map[string]winemu.User{adminUser: {NTHash: "", Password: adminPass, Admin: true}}, Root: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, winemu.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}()
	ap := netip.MustParseAddrPort(l.Addr().String())
	// Serve registers the listener as it starts.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ep, ok := srv.EndpointFor(svcctl.SvcctlSyntaxV2_0); ok {
			if ep.Addr != ap {
				t.Fatalf("endpoint = %+v, want %s", ep, ap)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("endpoint never registered")
		}
	}
	binding := "ncacn_ip_tcp:127.0.0.1[" + strconv.Itoa(int(ap.Port())) + "]"

	// Anonymous callers reach svcctl but get access denied.
	cc, err := dcerpc.Dial(ctx, binding)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := svcctl.NewSvcctlClient(ctx, cc, dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
	if resp == nil || resp.Return != winemu.ErrorAccessDenied {
		t.Fatalf("anonymous OpenSCManager = %+v", resp)
	}
	cc.Close(ctx)

	// An interface the server does not serve is refused at bind time.
	cc, err = dcerpc.Dial(ctx, binding)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close(ctx)
	wr, err := winreg.NewWinregClient(ctx, cc, dcerpc.WithInsecure())
	if err == nil {
		// go-msrpc reports a rejected presentation context on first use.
		_, err = wr.OpenLocalMachine(ctx, &winreg.OpenLocalMachineRequest{DesiredAccess: 0x20019})
	}
	if err == nil || !strings.Contains(err.Error(), "abstract syntax not supported") {
		t.Fatalf("winreg on the svcctl server: %v", err)
	}

	// An operation svcctl does not implement faults with nca_op_rng_error.
	cc2, err := dcerpc.Dial(ctx, binding)
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close(ctx)
	cli2, err := svcctl.NewSvcctlClient(ctx, cc2, dcerpc.WithSign(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(adminUser, adminPass)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli2.LockServiceDatabase(ctx, &svcctl.LockServiceDatabaseRequest{})
	if code, ok := faultCode(err); !ok || code != 0x1c010002 {
		t.Fatalf("unimplemented op: %v (code %#x)", err, code)
	}
}

func TestRegisterDuplicate(t *testing.T) {
	srv := &winemu.Server{}
	defer srv.Close()
	err := srv.Register(winemu.Interface{Name: "svcctl again", Syntax: *svcctl.SvcctlSyntaxV2_0, Handle: svcctl.NewSvcctlServerHandle(srv.SCM())})
	if !errors.Is(err, winemu.ErrDuplicateInterface) {
		t.Fatalf("Register duplicate = %v", err)
	}
}

func TestServeAfterClose(t *testing.T) {
	checkLeaks(t)
	srv := &winemu.Server{}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), l); !errors.Is(err, winemu.ErrServerClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
	if _, err := srv.ListenExtra(context.Background(), "127.0.0.1"); !errors.Is(err, winemu.ErrServerClosed) {
		t.Fatalf("ListenExtra after Close = %v", err)
	}
	// Serve closed the listener it was given.
	if _, err := l.Accept(); err == nil {
		t.Fatal("listener still open")
	}
}

func TestStartPortInUse(t *testing.T) {
	checkLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := netip.MustParseAddrPort(l.Addr().String()).Port()
	srv := &winemu.Server{EPMPort: int(port)}
	defer srv.Close()
	if err := srv.Start(context.Background(), "127.0.0.1"); err == nil || !strings.Contains(err.Error(), "endpoint mapper") {
		t.Fatalf("Start on a busy port = %v", err)
	}
}

// TestAlterContextSecondInterface binds a second interface with a second
// security context on the same connection (go-msrpc does this with an
// alter_context and an auth3), and interleaves calls on both.
func TestAlterContextSecondInterface(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ep, _ := e.srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip+"["+strconv.Itoa(int(ep.Addr.Port()))+"]")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close(ctx)
	scm, err := svcctl.NewSvcctlClient(ctx, cc, dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(adminUser, adminPass)))
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := epm.NewEpmClient(ctx, cc, dcerpc.WithSign(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(plainUser, plainPass)))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		openSCM(ctx, t, scm, scManagerConnect|scManagerCreateService)
		resp, err := mapper.Map(ctx, &epm.MapRequest{MapTower: svcctlTower(), MaxTowers: 1})
		if err != nil || resp.Status != 0 {
			t.Fatalf("ept_map: %v", err)
		}
	}
	logs := e.logs.String()
	// One connection, two identities and levels.
	svcLine := regexp.MustCompile(`op=ROpenSCManagerW opnum=15 user=` + adminUser + ` auth=10 level=6 result=0 conn=(\d+)`).FindStringSubmatch(logs)
	epmLine := regexp.MustCompile(`op=ept_map opnum=3 user=` + plainUser + ` auth=10 level=5 result=0 conn=(\d+)`).FindStringSubmatch(logs)
	if svcLine == nil || epmLine == nil || svcLine[1] != epmLine[1] {
		t.Fatalf("calls not on one connection with their own identities:\n%s", logs)
	}
}
