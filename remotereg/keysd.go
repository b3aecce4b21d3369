package remotereg

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"
)

// Access rights and SECURITY_INFORMATION bits (MS-DTYP, MS-RRP) used to
// protect the parameter key.
const (
	keyAllAccess   = 0x000F003F // KEY_ALL_ACCESS
	readControl    = 0x00020000 // READ_CONTROL
	writeDAC       = 0x00040000 // WRITE_DAC
	daclSecInfo    = 0x00000004 // DACL_SECURITY_INFORMATION
	protectedDACL  = 0x80000000 // PROTECTED_DACL_SECURITY_INFORMATION
	containerInher = 0x02       // CONTAINER_INHERIT_ACE
)

// Well-known SIDs in binary form (MS-DTYP 2.4.2.2).
var (
	sidSystem         = []byte{1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0}              // S-1-5-18
	sidAdministrators = []byte{1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 32, 2, 0, 0} // S-1-5-32-544
)

// paramKeySD is the security descriptor of the parameter key: a
// self-relative SECURITY_DESCRIPTOR (MS-DTYP 2.4.6) with owner and group
// BUILTIN\Administrators and a protected DACL (no ACE inherited from
// HKLM\SOFTWARE, where Users may read) that gives full control to SYSTEM
// and to Administrators, inherited by subkeys. Nobody else, Users
// included, may open the key.
func paramKeySD() []byte {
	ace := func(sid []byte) []byte {
		b := make([]byte, 8, 8+len(sid))
		b[0] = 0 // ACCESS_ALLOWED_ACE_TYPE
		b[1] = containerInher
		binary.LittleEndian.PutUint16(b[2:], uint16(8+len(sid)))
		binary.LittleEndian.PutUint32(b[4:], keyAllAccess)
		return append(b, sid...)
	}
	aces := append(ace(sidSystem), ace(sidAdministrators)...)
	acl := make([]byte, 8, 8+len(aces))
	acl[0] = 2 // ACL_REVISION
	binary.LittleEndian.PutUint16(acl[2:], uint16(8+len(aces)))
	binary.LittleEndian.PutUint16(acl[4:], 2)
	acl = append(acl, aces...)

	const header = 20
	daclOff := header
	ownerOff := daclOff + len(acl)
	groupOff := ownerOff + len(sidAdministrators)
	sd := make([]byte, header, groupOff+len(sidAdministrators))
	sd[0] = 1 // revision
	// SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_DACL_PRESENT
	binary.LittleEndian.PutUint16(sd[2:], 0x8000|0x1000|0x0004)
	binary.LittleEndian.PutUint32(sd[4:], uint32(ownerOff))
	binary.LittleEndian.PutUint32(sd[8:], uint32(groupOff))
	binary.LittleEndian.PutUint32(sd[12:], 0) // no SACL
	binary.LittleEndian.PutUint32(sd[16:], uint32(daclOff))
	sd = append(sd, acl...)
	sd = append(sd, sidAdministrators...)
	return append(sd, sidAdministrators...)
}

// paramKeyAttributes carries paramKeySD in BaseRegCreateKey, which applies
// it when the key is created.
func paramKeyAttributes() *winreg.SecurityAttributes {
	sd := paramKeySD()
	n := uint32(len(sd))
	return &winreg.SecurityAttributes{
		Length:             n,
		SecurityDescriptor: &winreg.SecurityDescriptor{SecurityDescriptor: sd, InSecurityDescriptorLength: n, OutSecurityDescriptorLength: n},
	}
}

// protectKey sets paramKeySD's DACL on k with BaseRegSetKeySecurity (for a
// server that ignored the descriptor at creation), then reads the DACL back
// with BaseRegGetKeySecurity and checks that it is ours. It returns an
// error when the server refuses either call or keeps another DACL: the key
// is then readable by more than administrators.
func protectKey(ctx context.Context, cli winreg.WinregClient, k *winreg.Key) error {
	sd := paramKeySD()
	n := uint32(len(sd))
	resp, err := cli.BaseRegSetKeySecurity(ctx, &winreg.BaseRegSetKeySecurityRequest{
		Key: k, SecurityInformation: daclSecInfo | protectedDACL,
		SecurityDescriptor: &winreg.SecurityDescriptor{SecurityDescriptor: sd, InSecurityDescriptorLength: n, OutSecurityDescriptorLength: n},
	})
	if resp != nil && resp.Return != 0 {
		err = Win32Error(resp.Return)
	}
	if err != nil {
		return fmt.Errorf("set key security: %w", err)
	}
	const room = 4096
	got, err := cli.BaseRegGetKeySecurity(ctx, &winreg.BaseRegGetKeySecurityRequest{
		Key: k, SecurityInformation: daclSecInfo,
		SecurityDescriptorIn: &winreg.SecurityDescriptor{InSecurityDescriptorLength: room},
	})
	if got != nil && got.Return != 0 {
		err = Win32Error(got.Return)
	}
	if err != nil {
		return fmt.Errorf("get key security: %w", err)
	}
	var raw []byte
	if got.SecurityDescriptorOut != nil {
		raw = got.SecurityDescriptorOut.SecurityDescriptor
	}
	if !adminsOnly(daclOf(raw)) {
		return fmt.Errorf("the key's DACL lets more than SYSTEM and Administrators in (%d bytes read back)", len(raw))
	}
	return nil
}

// adminsOnly reports whether acl (a binary ACL) has at least one ACE and
// allows access only to SYSTEM and Administrators.
func adminsOnly(acl []byte) bool {
	if len(acl) < 8 {
		return false
	}
	n := int(binary.LittleEndian.Uint16(acl[4:]))
	if n == 0 {
		return false
	}
	p := 8
	for range n {
		if p+8 > len(acl) {
			return false
		}
		typ, size := acl[p], int(binary.LittleEndian.Uint16(acl[p+2:]))
		if size < 8 || p+size > len(acl) {
			return false
		}
		sid := acl[p+8 : p+size]
		if typ == 0 && !bytes.Equal(sid, sidSystem) && !bytes.Equal(sid, sidAdministrators) { // ACCESS_ALLOWED
			return false
		}
		p += size
	}
	return true
}

// daclOf returns the DACL of a self-relative security descriptor, or nil.
func daclOf(sd []byte) []byte {
	if len(sd) < 20 || binary.LittleEndian.Uint16(sd[2:])&0x0004 == 0 {
		return nil
	}
	off := int(binary.LittleEndian.Uint32(sd[16:]))
	if off == 0 || off+8 > len(sd) {
		return nil
	}
	size := int(binary.LittleEndian.Uint16(sd[off+2:]))
	if size < 8 || off+size > len(sd) {
		return nil
	}
	return sd[off : off+size]
}
