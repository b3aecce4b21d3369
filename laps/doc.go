// Package laps supplies each computer's own local administrator password,
// read from Active Directory as LAPS stores it, as a credential source for
// sessions (adauth.LocalAdminSource, session.Config.LocalAdmin).
//
// A Source binds to the directory as the technician (adauth.Directory),
// finds the computer object (Host.DN from directory discovery, else a
// search by sAMAccountName=NAME$) and reads, in order of preference:
//
//   - Windows LAPS, encrypted (msLAPS-EncryptedPassword): a DPAPI-NG blob
//     decrypted with the group key that a domain controller releases
//     through MS-GKDI GetKey (NTLM, packet privacy, response signatures
//     verified) only to members of the group the blob names;
//   - Windows LAPS, plain (msLAPS-Password): JSON naming the account;
//   - legacy (Microsoft) LAPS (ms-Mcs-AdmPwd): the password only. The
//     account is Source.Account, or the computer's built-in Administrator
//     (RID 500), whose name is asked of the computer's LSA.
//
// The credentials are the local account ".\name": a local account
// authenticates with NTLM only, so Kerberos cannot be used for it and
// NTLM must be allowed on the computer for local accounts.
//
// # Secrets
//
// The password lives only in memory, in the returned adauth.Credentials:
// this package never logs, writes, caches or quotes it, and its errors
// name the format, the computer and the reason only. Package session sends
// it only to the computer whose name it was read for (its NTLM challenge
// must announce that name) and never remembers it.
//
// # Diagnoses
//
// Errors carry a diag.Diagnosis (Error.Diagnose): laps-no-attribute,
// laps-not-readable (a confidential attribute the account may not read),
// laps-expired, laps-refused (naming the group SID the password was
// encrypted for), laps-not-found and laps-failed.
//
// # What it does not do
//
// It does not write or rotate LAPS passwords, read password history or
// DSRM passwords, locate domain controllers by itself (set Directory.URL
// or Directory.Domain) or use Kerberos.
package laps
