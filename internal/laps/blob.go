package laps

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The object identifiers of a DPAPI-NG blob.
var (
	oidEnvelopedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidData              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidAES256Wrap        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 45}
	oidAES256GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidProtectionKeyAttr = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 74, 1}
	oidSIDDescriptor     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 74, 1, 1}
)

// Blob is a parsed DPAPI-NG blob (the CMS EnvelopedData that
// NCryptProtectSecret writes): one KEKRecipientInfo whose key identifier is
// a GKDI key identifier and whose other-key attribute is the protection
// descriptor, the content-encryption key wrapped with AES-256 key wrap,
// and the content encrypted with AES-256-GCM (inside the CMS, or appended
// after it as Windows LAPS does).
type Blob struct {
	KeyID *KeyIdentifier
	// SID is the protection descriptor's SID: the principal (usually a
	// group) that may decrypt.
	SID string
	// Descriptor is the protection descriptor as a string, "SID=S-1-...".
	Descriptor string
	WrappedKey []byte
	Nonce      []byte
	TagSize    int
	CipherText []byte // with the GCM tag at its end
}

// gcmParameters is RFC 5084's GCMParameters.
type gcmParameters struct {
	Nonce  []byte
	ICVLen int `asn1:"optional,default:12"`
}

type encryptedContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Algorithm   pkix.AlgorithmIdentifier
	Content     []byte `asn1:"optional,tag:0"`
}

type envelopedData struct {
	Version        int
	RecipientInfos asn1.RawValue `asn1:"set"`
	Content        encryptedContentInfo
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

// kekRecipientInfo is RFC 5652's KEKRecipientInfo with its KEKIdentifier
// kept raw (its optional date and other attribute are told apart by tag).
type kekRecipientInfo struct {
	Version      int
	KEKID        asn1.RawValue
	Algorithm    pkix.AlgorithmIdentifier
	EncryptedKey []byte
}

func blobErr(format string, args ...any) error {
	return &FormatError{What: "DPAPI-NG blob", Reason: fmt.Sprintf(format, args...)}
}

// elements splits the contents of a constructed ASN.1 value.
func elements(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

// ParseBlob parses a DPAPI-NG blob. Content that follows the CMS
// structure is taken as the encrypted content when the CMS carries none.
func ParseBlob(b []byte) (*Blob, error) {
	var ci contentInfo
	rest, err := asn1.Unmarshal(b, &ci)
	if err != nil {
		return nil, blobErr("ContentInfo: %v", err)
	}
	if !ci.ContentType.Equal(oidEnvelopedData) {
		return nil, blobErr("content type %v is not EnvelopedData", ci.ContentType)
	}
	var ed envelopedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
		return nil, blobErr("EnvelopedData: %v", err)
	}
	if ed.Version != 2 {
		return nil, blobErr("EnvelopedData version %d", ed.Version)
	}
	ris, err := elements(ed.RecipientInfos.Bytes)
	if err != nil {
		return nil, blobErr("RecipientInfos: %v", err)
	}
	if len(ris) != 1 || ris[0].Class != asn1.ClassContextSpecific || ris[0].Tag != 2 || !ris[0].IsCompound {
		return nil, blobErr("expected one KEKRecipientInfo, got %d recipients", len(ris))
	}
	var kri kekRecipientInfo
	if _, err := asn1.UnmarshalWithParams(ris[0].FullBytes, &kri, "tag:2"); err != nil {
		return nil, blobErr("KEKRecipientInfo: %v", err)
	}
	if kri.Version != 4 {
		return nil, blobErr("KEKRecipientInfo version %d", kri.Version)
	}
	if !kri.Algorithm.Algorithm.Equal(oidAES256Wrap) {
		return nil, fmt.Errorf("%w: key encryption algorithm %v", ErrUnsupported, kri.Algorithm.Algorithm)
	}
	if len(kri.EncryptedKey) != 40 {
		return nil, blobErr("wrapped key of %d bytes", len(kri.EncryptedKey))
	}
	out := &Blob{WrappedKey: kri.EncryptedKey}
	kid, err := elements(kri.KEKID.Bytes)
	if err != nil || len(kid) < 2 || kid[0].Tag != asn1.TagOctetString {
		return nil, blobErr("KEKIdentifier malformed")
	}
	if out.KeyID, err = ParseKeyIdentifier(kid[0].Bytes); err != nil {
		return nil, err
	}
	other := kid[len(kid)-1]
	if other.Tag != asn1.TagSequence {
		return nil, blobErr("KEKIdentifier has no protection descriptor")
	}
	if out.SID, err = parseDescriptor(other.FullBytes); err != nil {
		return nil, err
	}
	out.Descriptor = "SID=" + out.SID

	c := ed.Content
	if !c.Algorithm.Algorithm.Equal(oidAES256GCM) {
		return nil, fmt.Errorf("%w: content encryption algorithm %v", ErrUnsupported, c.Algorithm.Algorithm)
	}
	var gp gcmParameters
	if _, err := asn1.Unmarshal(c.Algorithm.Parameters.FullBytes, &gp); err != nil {
		return nil, blobErr("GCM parameters: %v", err)
	}
	if len(gp.Nonce) != 12 || gp.ICVLen < 12 || gp.ICVLen > 16 {
		return nil, blobErr("GCM nonce of %d bytes, tag of %d", len(gp.Nonce), gp.ICVLen)
	}
	out.Nonce, out.TagSize = gp.Nonce, gp.ICVLen
	out.CipherText = c.Content
	if len(out.CipherText) == 0 {
		out.CipherText = rest
	}
	if len(out.CipherText) < out.TagSize {
		return nil, blobErr("encrypted content of %d bytes", len(out.CipherText))
	}
	return out, nil
}

// otherKeyAttribute is RFC 5652's OtherKeyAttribute as DPAPI-NG fills it.
type otherKeyAttribute struct {
	ID   asn1.ObjectIdentifier
	Attr protectionDescriptor
}

// protectionDescriptor is NCRYPT's protection descriptor: a type OID and,
// for SID descriptors, a list of lists of name/value pairs (OR of ANDs).
type protectionDescriptor struct {
	Type  asn1.ObjectIdentifier
	Rules [][]descriptorPair
}

type descriptorPair struct {
	Name  string `asn1:"utf8"`
	Value string `asn1:"utf8"`
}

// parseDescriptor returns the SID of a "SID=..." protection descriptor.
// Descriptors with several rules (AND/OR) or other types are unsupported.
func parseDescriptor(b []byte) (string, error) {
	var a otherKeyAttribute
	if rest, err := asn1.Unmarshal(b, &a); err != nil || len(rest) != 0 {
		return "", blobErr("protection descriptor: %v", err)
	}
	if !a.ID.Equal(oidProtectionKeyAttr) || !a.Attr.Type.Equal(oidSIDDescriptor) {
		return "", fmt.Errorf("%w: protection descriptor %v/%v", ErrUnsupported, a.ID, a.Attr.Type)
	}
	if len(a.Attr.Rules) != 1 || len(a.Attr.Rules[0]) != 1 || !strings.EqualFold(a.Attr.Rules[0][0].Name, "SID") {
		return "", fmt.Errorf("%w: protection descriptor with several rules", ErrUnsupported)
	}
	sid := a.Attr.Rules[0][0].Value
	if _, err := sidBytes(sid); err != nil {
		return "", err
	}
	return sid, nil
}

var sidRE = regexp.MustCompile(`^S-1-[0-9]+(-[0-9]+){1,15}$`)

// sidBytes encodes a SID string in its binary form (MS-DTYP 2.4.2.2).
func sidBytes(sid string) ([]byte, error) {
	if !sidRE.MatchString(sid) {
		return nil, &FormatError{What: "SID", Reason: fmt.Sprintf("%q is not a SID", sid)}
	}
	parts := strings.Split(sid, "-")
	auth, err := strconv.ParseUint(parts[2], 10, 48)
	if err != nil {
		return nil, &FormatError{What: "SID", Reason: fmt.Sprintf("authority of %q", sid)}
	}
	b := []byte{1, byte(len(parts) - 3), 0, 0, 0, 0, 0, 0}
	for i := 0; i < 6; i++ {
		b[2+i] = byte(auth >> (8 * (5 - i)))
	}
	for _, p := range parts[3:] {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, &FormatError{What: "SID", Reason: fmt.Sprintf("sub-authority of %q", sid)}
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b, nil
}

// TargetSD returns the security descriptor that DPAPI-NG sends to GetKey
// for the protection descriptor "SID=sid": self-relative, owner and group
// SYSTEM, and a DACL granting sid 0x3 and Everyone 0x2, laid out DACL,
// owner, group. The bytes enter the L1 key derivation, so they must be
// exactly Windows'.
func TargetSD(sid string) ([]byte, error) {
	s, err := sidBytes(sid)
	if err != nil {
		return nil, err
	}
	world, _ := sidBytes("S-1-1-0")
	system, _ := sidBytes("S-1-5-18")
	ace := func(sid []byte, mask uint32) []byte {
		b := []byte{0, 0}
		b = binary.LittleEndian.AppendUint16(b, uint16(8+len(sid)))
		b = binary.LittleEndian.AppendUint32(b, mask)
		return append(b, sid...)
	}
	aces := append(ace(s, 3), ace(world, 2)...)
	acl := []byte{2, 0}
	acl = binary.LittleEndian.AppendUint16(acl, uint16(8+len(aces)))
	acl = binary.LittleEndian.AppendUint16(acl, 2)
	acl = append(acl, 0, 0)
	acl = append(acl, aces...)
	const hdr = 20
	sd := []byte{1, 0}
	sd = binary.LittleEndian.AppendUint16(sd, 0x8004)                           // self-relative, DACL present
	sd = binary.LittleEndian.AppendUint32(sd, uint32(hdr+len(acl)))             // owner
	sd = binary.LittleEndian.AppendUint32(sd, uint32(hdr+len(acl)+len(system))) // group
	sd = binary.LittleEndian.AppendUint32(sd, 0)                                // SACL
	sd = binary.LittleEndian.AppendUint32(sd, hdr)                              // DACL
	sd = append(sd, acl...)
	sd = append(sd, system...)
	return append(sd, system...), nil
}

// Decrypt decrypts the blob with the group key envelope that GetKey
// returned for its key identifier and target security descriptor. A
// wrong key fails the key unwrap's integrity check (ErrDecrypt). It does
// not keep the keys.
func (b *Blob) Decrypt(env *GroupKeyEnvelope) ([]byte, error) {
	kek, err := env.KEK(b.KeyID)
	if err != nil {
		return nil, err
	}
	cek, err := aesUnwrap(kek, b.WrappedKey)
	clear(kek)
	if err != nil {
		return nil, err
	}
	defer clear(cek)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, blobErr("content key: %v", err)
	}
	g, err := cipher.NewGCMWithTagSize(block, b.TagSize)
	if err != nil {
		return nil, blobErr("GCM: %v", err)
	}
	pt, err := g.Open(nil, b.Nonce, b.CipherText, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: content authentication failed", ErrDecrypt)
	}
	return pt, nil
}

// aesIV is RFC 3394's default initial value.
var aesIV = []byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// aesUnwrap is RFC 3394 key unwrap (section 2.2.2).
func aesUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, blobErr("wrapped key of %d bytes", len(wrapped))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, blobErr("key-encryption key: %v", err)
	}
	n := len(wrapped)/8 - 1
	a := append([]byte(nil), wrapped[:8]...)
	r := append([]byte(nil), wrapped[8:]...)
	buf := make([]byte, 16)
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf, binary.BigEndian.Uint64(a)^t)
			copy(buf[8:], r[(i-1)*8:i*8])
			block.Decrypt(buf, buf)
			copy(a, buf[:8])
			copy(r[(i-1)*8:], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(a, aesIV) != 1 {
		clear(r)
		return nil, fmt.Errorf("%w: key unwrap integrity check failed (wrong key)", ErrDecrypt)
	}
	return r, nil
}

// aesWrap is RFC 3394 key wrap (section 2.2.1).
func aesWrap(kek, key []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	a := append([]byte(nil), aesIV...)
	r := append([]byte(nil), key...)
	buf := make([]byte, 16)
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			copy(buf, a)
			copy(buf[8:], r[(i-1)*8:i*8])
			block.Encrypt(buf, buf)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^uint64(n*j+i))
			copy(r[(i-1)*8:], buf[8:])
		}
	}
	return append(a, r...), nil
}

// seal builds a DPAPI-NG blob: it encrypts plaintext with a fresh content
// key, wraps that key with kek, and writes the CMS with the content
// detached after it, as Windows LAPS stores it.
func seal(rnd io.Reader, id *KeyIdentifier, sid string, kek, plaintext []byte) ([]byte, error) {
	cek := make([]byte, 32)
	nonce := make([]byte, 12)
	if _, err := io.ReadFull(rnd, cek); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	ct := g.Seal(nil, nonce, plaintext, nil)
	wrapped, err := aesWrap(kek, cek)
	if err != nil {
		return nil, err
	}
	gp, err := asn1.Marshal(gcmParameters{Nonce: nonce, ICVLen: 16})
	if err != nil {
		return nil, err
	}
	desc, err := asn1.Marshal(otherKeyAttribute{ID: oidProtectionKeyAttr, Attr: protectionDescriptor{
		Type: oidSIDDescriptor, Rules: [][]descriptorPair{{{Name: "SID", Value: sid}}}}})
	if err != nil {
		return nil, err
	}
	kidOctets, err := asn1.Marshal(id.Marshal())
	if err != nil {
		return nil, err
	}
	kekid := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(kidOctets, desc...)}
	kri, err := asn1.MarshalWithParams(kekRecipientInfo{Version: 4, KEKID: kekid,
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidAES256Wrap}, EncryptedKey: wrapped}, "tag:2")
	if err != nil {
		return nil, err
	}
	ed, err := asn1.Marshal(envelopedData{Version: 2,
		RecipientInfos: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: kri},
		Content: encryptedContentInfo{ContentType: oidData,
			Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidAES256GCM, Parameters: asn1.RawValue{FullBytes: gp}}}})
	if err != nil {
		return nil, err
	}
	cms, err := asn1.Marshal(contentInfo{ContentType: oidEnvelopedData, Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: ed}})
	if err != nil {
		return nil, err
	}
	return append(cms, ct...), nil
}
