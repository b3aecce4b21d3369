// Package smbconn holds one authenticated SMB2/3 session per host and
// exposes what the server negotiated: dialect, signing, encryption, the
// guest and encrypt-data session flags, and the server's NTLM target info.
//
// The same session serves file access (Session.Mount, used by package
// deploy) and RPC named pipes (Session.OpenPipe returns a net.Conn;
// PipeDialer plugs it into go-msrpc through dcerpc.WithDialer), so a
// target is logged on to once. It is built on
// github.com/oiweiwei/go-smb2.fork, the project's single SMB stack, and
// works around that library's gaps:
//
//   - A net.Conn wrapper reads every frame from the server before go-smb2
//     does. It records the NEGOTIATE parameters and the SessionFlags of
//     the final SESSION_SETUP response (IS_GUEST, IS_NULL, ENCRYPT_DATA),
//     which go-smb2 does not export, and it rejects malformed frames with
//     ErrProtocol, on which go-smb2's receiver goroutine would panic.
//     Any server that completes an NTLM logon (any domain computer) can
//     send such frames, so the checks cover what go-smb2's decoders slice
//     with: headers and NextCommand chains, every offset and length of
//     the responses (NEGOTIATE and its contexts, SESSION_SETUP, CREATE,
//     READ, IOCTL, QUERY_INFO, QUERY_DIRECTORY, CHANGE_NOTIFY, ERROR and
//     its contexts), computed without the wrap-around of go-smb2's own
//     checks, and the Count of WRITE responses against the request.
//     Encrypted frames are decrypted by the wrapper itself, with keys
//     derived as go-smb2 derives them (AES-GCM from the standard library,
//     AES-CCM of its own; the SMB 3.1.1 preauth hash read from both
//     directions), checked the same way, and passed on unchanged: go-smb2
//     decrypts them again. A frame that fails authentication ends the
//     connection instead of being skipped.
//   - Panics of go-smb2 in this package's own goroutines and methods
//     (Dial, Mount, OpenPipe, the Pipe's read goroutine, Write and Close,
//     Close's logoff) become ErrProtocol. Panics in go-smb2's receiver
//     goroutine cannot be recovered by anyone, which is why the frames are
//     validated first. The test fake server and its mutation run
//     (TestHostileServer, FuzzHostileServer) exercise both.
//   - Downgrades: Options.MinDialect refuses an older dialect before the
//     SESSION_SETUP (ErrDowngrade). On SMB 3.0 and 3.0.2, which go-smb2
//     does not validate, Dial sends FSCTL_VALIDATE_NEGOTIATE_INFO itself:
//     the wrapper replaces a TREE_DISCONNECT on IPC$ with the IOCTL,
//     signed with AES-CMAC or encrypted, and Dial compares the server's
//     verified answer with the NEGOTIATE response (ErrDowngrade on a
//     mismatch). SMB 3.1.1 is protected by its preauth integrity hash,
//     SMB 2.x by nothing (Info.NegotiationValidated is false).
//   - A wrapping Initiator captures the server's NTLM CHALLENGE (see
//     ParseChallenge), on failed logons too, and, with
//     Options.ExpectName, checks the server's identity in it
//     (CheckIdentity) and abandons the setup before any AUTHENTICATE on a
//     mismatch (*IdentityError, ErrIdentityMismatch).
//   - Options.Initiator replaces NTLMv2 with another security context,
//     such as internal/krb's Kerberos initiator; the session key is still
//     captured for the frame watcher, and a failure the initiator records
//     (Failure() error, for example a server that skipped mutual
//     authentication) is returned as is.
//   - Dial refuses guest sessions (ErrGuest) unless asked: go-smb2 runs
//     them unsigned even when signing is required.
//   - Tree connects use \\host\share, not go-smb2's \\ip:port\share.
//
// Two transports carry a Session (Options.Transport, Info.Transport):
// Direct TCP on port 445, and the NetBIOS session service on port 139
// (RFC 1002), where Dial first sends a SESSION REQUEST for the called name
// (Options.CalledName with suffix 0x20, SMBServerName when unknown, and
// SMBServerName once more when the server says it does not serve the
// name). A NEGATIVE or RETARGET response is an *NBTSessionError
// (ErrNBTSession); a retarget is not followed. The frame watcher drops the
// server's SESSION KEEP ALIVE packets; everything after the SESSION
// REQUEST is the same SMB2/3 session, with the same checks. The called
// name is no authentication: Options.ExpectName is checked on 139 as on
// 445. Dial does not fall back from one transport to the other; package
// adauth does.
//
// Signing is required by default; encryption is used when the server asks
// for it, or when the caller prefers or requires it (Options.Encryption).
// Errors are typed: *Error (with the Info learned before a failure),
// *DialError (refused, filtered, no route, unresolvable), NTStatus codes
// and sentinel errors, all matchable with errors.Is and errors.As.
// MapError gives the same treatment to errors of a go-smb2 Share; where
// go-smb2 reduces a status to os.ErrNotExist, os.ErrExist or
// os.ErrPermission, the result (*FSError) matches both the os error and
// the NT statuses it stands for.
//
// Known limits of go-smb2 that this package cannot fix: it signs with
// AES-CMAC only, in pure Go and under its connection lock (slower than
// AES-GCM encryption, see package adauth's default); and it cannot
// cancel a READ on the server (see Pipe.Close).
//
// A Pipe reads each SMB2 READ into a 64 KiB buffer shared through a pool
// by every Pipe of the process and returns a copy of what the server
// sent, so a bulk connect's many short RPC answers do not each cost a
// fresh 64 KiB; a buffer is reused only after go-smb2 returned from the
// READ into it.
//
// ParseChallenge and FindChallenge are usable on their own, for example by
// an unauthenticated discovery probe.
//
// It does not decide whether an account is an administrator (package
// adauth does), does not reconnect, and does not speak DCE/RPC.
package smbconn
