package winemu_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

// TestImpacketInterop drives the server with impacket, an independent
// DCE/RPC implementation: ept_map (opnum 3) on 135 must hand out the
// dynamic svcctl port, and an unauthenticated OpenSCManagerW on it must
// come back as ERROR_ACCESS_DENIED in a well-formed response.
func TestImpacketInterop(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import impacket.dcerpc.v5.scmr").Run(); err != nil {
		t.Skipf("impacket not available: %v", err)
	}
	checkLeaks(t)
	e := startServer(t)
	ep, _ := e.srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/impacket_scm.py", e.ip).CombinedOutput()
	if err != nil {
		t.Fatalf("impacket: %v\n%s", err, out)
	}
	s := string(out)
	want := "BINDING ncacn_ip_tcp:" + e.ip + "[" + strconv.Itoa(int(ep.Addr.Port())) + "]"
	if !strings.Contains(s, want) || !strings.Contains(s, "DENIED 5") {
		t.Fatalf("impacket output:\n%s\nwant %q and DENIED 5", s, want)
	}
	if !strings.Contains(e.logs.String(), "op=ept_map") {
		t.Errorf("impacket did not use ept_map:\n%s", e.logs.String())
	}
}
