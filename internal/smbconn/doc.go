// Package smbconn holds one authenticated SMB2/3 session per host and
// exposes what the server negotiated: dialect, signing, encryption, the
// guest and encrypt-data session flags, and the server's NTLM target info.
//
// The same session serves file copy (package deploy) and RPC named pipes
// (package remotereg), so a target is logged on to once. It is built on
// github.com/oiweiwei/go-smb2.fork, the project's single SMB stack.
package smbconn
