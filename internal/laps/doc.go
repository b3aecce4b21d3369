// Package laps reads a computer's local administrator password from
// Active Directory, as LAPS stores it, in each of its three formats, and
// decrypts the encrypted one through MS-GKDI.
//
// It is internal while the public API is reworked (issue 21); the session
// credential source and `connect -laps` will be built on it (issue 18 §2).
//
// # Formats
//
//   - Legacy (Microsoft) LAPS: ms-Mcs-AdmPwd holds the password in clear
//     text and ms-Mcs-AdmPwdExpirationTime a decimal FILETIME. No account
//     name is stored (ParseLegacy).
//   - Windows LAPS, plain: msLAPS-Password holds JSON {"n": account, "t":
//     update time as a hexadecimal FILETIME, "p": password};
//     msLAPS-PasswordExpirationTime is a decimal FILETIME (ParseWindows).
//   - Windows LAPS, encrypted: msLAPS-EncryptedPassword holds a 16-byte
//     header (the update FILETIME as high then low 32 bits, the blob's size,
//     4 reserved bytes) and a DPAPI-NG blob (ParseEncrypted). The plaintext
//     is the same JSON in UTF-16LE (ParseDecrypted).
//
// # DPAPI-NG
//
// The blob is a CMS EnvelopedData (RFC 5652) with one KEKRecipientInfo:
// its key identifier is a GKDI key identifier (root key ID, L0/L1/L2
// indexes, and a nonce or the encryptor's DH/ECDH public key), its other
// key attribute the protection descriptor "SID=S-1-5-...", the group whose
// members may decrypt. The content key is wrapped with AES-256 key wrap
// (RFC 3394) and the content encrypted with AES-256-GCM, after the CMS
// structure for LAPS (ParseBlob).
//
// To decrypt, the reader asks a DC for the group key (MS-GKDI GetKey,
// KeyClient) for the security descriptor that the protection descriptor
// implies (TargetSD) and the key identifier's indexes. The DC evaluates
// that descriptor against the caller's token and returns the private seed
// keys only to a member of the group; others get E_ACCESSDENIED, reported
// as a *RefusedError that names the group's SID. From the envelope,
// GroupKeyEnvelope.KEK derives the L2 key downwards with the SP 800-108
// counter-mode HMAC KDF (label "KDS service", context root key ID || L0 ||
// L1 || L2) and then the key-encryption key: KDF(L2 key, nonce) for a
// nonce identifier; for a public-key identifier, the group's private key
// KDF(L2 key, algorithm name), DH or ECDH with the encryptor's public
// key, SP 800-56A's concatenation hash and the KDF once more.
//
// The derivation is checked against blobs that Windows made with known
// root keys (jborean93/dpapi-ng's public vectors, in testdata/).
//
// # Secrets
//
// A Password's secret lives only in memory: Password's String, GoString
// and LogValue redact it, no error of this package quotes an attribute
// value (parsers report the structure and the reason), and the
// intermediate keys are cleared after use where the package owns them.
// The package never logs, writes or caches passwords or keys.
//
// # What it does not do
//
// It does not write LAPS attributes, rotate passwords, read password
// history (msLAPS-EncryptedPasswordHistory) or DSRM passwords, follow
// referrals, use Kerberos, or decide which account to log on as for legacy
// LAPS (the caller picks the built-in Administrator or a configured name).
// Protection descriptors other than a single SID are unsupported.
// RootKey, Envelope and Protect play the DC and the LAPS client in tests
// and the lab; the SDK never holds a root key.
package laps
