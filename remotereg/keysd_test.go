package remotereg

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"
)

// The parameter key's descriptor, byte for byte: self-relative, owner and
// group BUILTIN\Administrators, a protected DACL with SYSTEM and
// Administrators full control (KEY_ALL_ACCESS, inherited by subkeys), no
// SACL.
func TestParamKeySD(t *testing.T) {
	want := "" +
		"0100" + "0490" + // revision 1, control SE_SELF_RELATIVE|SE_DACL_PROTECTED|SE_DACL_PRESENT
		"48000000" + "58000000" + "00000000" + "14000000" + // owner 72, group 88, no SACL, DACL 20
		"02003400" + "02000000" + // ACL revision 2, 52 bytes, 2 ACEs
		"00021400" + "3f000f00" + "010100000000000512000000" + // allow, CI, SYSTEM
		"00021800" + "3f000f00" + "01020000000000052000000020020000" + // allow, CI, Administrators
		"01020000000000052000000020020000" + // owner
		"01020000000000052000000020020000" // group
	if got := hex.EncodeToString(paramKeySD()); got != want {
		t.Fatalf("descriptor\n got %s\nwant %s", got, want)
	}
	if !adminsOnly(daclOf(paramKeySD())) {
		t.Fatal("our own DACL not recognised")
	}
	a := paramKeyAttributes()
	if a.Length != 104 || a.SecurityDescriptor.InSecurityDescriptorLength != 104 || len(a.SecurityDescriptor.SecurityDescriptor) != 104 {
		t.Fatalf("attributes %+v", a)
	}
}

// sambaDefaultSD is what Samba 4.17 gave a key created with paramKeySD in
// BaseRegCreateKey (measured on the lab): it ignores the descriptor there,
// and its default DACL lets Everyone read.
const sambaDefaultSD = "01000480140000002400000000000000300000000102000000000005200000002002000001010000000000051200000002004800030000000000140019000200010100000000000100000000000018003f000f0001020000000000052000000020020000000014003f000f00010100000000000512000000"

func TestAdminsOnly(t *testing.T) {
	b, _ := hex.DecodeString(sambaDefaultSD)
	if adminsOnly(daclOf(b)) {
		t.Fatal("Samba's default DACL (Everyone may read) taken for administrators only")
	}
	for _, bad := range [][]byte{nil, b[:10], b[:60]} {
		if adminsOnly(daclOf(bad)) {
			t.Fatalf("truncated descriptor %x accepted", bad)
		}
	}
}

// fakeWinreg answers the two security calls; every other method panics.
type fakeWinreg struct {
	winreg.WinregClient
	setRet uint32
	getSD  []byte
	set    []*winreg.BaseRegSetKeySecurityRequest
}

func (f *fakeWinreg) BaseRegSetKeySecurity(_ context.Context, req *winreg.BaseRegSetKeySecurityRequest, _ ...dcerpc.CallOption) (*winreg.BaseRegSetKeySecurityResponse, error) {
	f.set = append(f.set, req)
	return &winreg.BaseRegSetKeySecurityResponse{Return: f.setRet}, nil
}

func (f *fakeWinreg) BaseRegGetKeySecurity(_ context.Context, req *winreg.BaseRegGetKeySecurityRequest, _ ...dcerpc.CallOption) (*winreg.BaseRegGetKeySecurityResponse, error) {
	return &winreg.BaseRegGetKeySecurityResponse{SecurityDescriptorOut: &winreg.SecurityDescriptor{SecurityDescriptor: f.getSD}}, nil
}

func TestProtectKey(t *testing.T) {
	samba, _ := hex.DecodeString(sambaDefaultSD)
	for _, c := range []struct {
		name   string
		setRet uint32
		getSD  []byte
		ok     bool
	}{
		{"set and read back", 0, paramKeySD(), true},
		{"set refused", uint32(ErrorAccessDenied), paramKeySD(), false},
		{"set ignored", 0, samba, false},
	} {
		f := &fakeWinreg{setRet: c.setRet, getSD: c.getSD}
		err := protectKey(context.Background(), f, &winreg.Key{})
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.setRet != 0 && !errors.Is(err, ErrorAccessDenied) {
			t.Errorf("%s: %v, want ERROR_ACCESS_DENIED", c.name, err)
		}
		if len(f.set) != 1 || f.set[0].SecurityInformation != daclSecInfo|protectedDACL || hex.EncodeToString(f.set[0].SecurityDescriptor.SecurityDescriptor) != hex.EncodeToString(paramKeySD()) {
			t.Errorf("%s: set calls %+v", c.name, f.set)
		}
	}
}
