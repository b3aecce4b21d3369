// Package testlab starts real peers for tests, benchmarks and the demo:
// Samba smbd and nmbd as Windows-like targets and a Samba AD DC, each in a
// network namespace of its own on a private bridge.
//
// Everything it creates lives under one temporary directory and is stopped
// by PID and namespace name, including after a failed or interrupted run.
// It never touches the system's own Samba configuration and never sends
// traffic outside the namespaces and bridge it creates.
//
// # Use in tests
//
//	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {Variant: testlab.GuestOnly}}})
//	tg := lab.Targets[0] // reach tg.Addr:445 from the test, log on as tg.Admin or tg.User
//
// New skips the test when the lab cannot run (not root, no Samba), or
// fails it when CI=true or LANCONNECT_LAB=require, and closes the lab in
// t.Cleanup. Take names, addresses and passwords from the Lab; they are
// generated per lab. Several labs may run at once, in one process or many.
// Target.Snapshot and Diff compare a target's shares (file tree, modes,
// sizes, modification times, contents) and Samba registry before and
// after a step that must change nothing.
//
// # Network
//
// Each lab has a bridge in the root namespace with a /24 from 10.0.0.0/8
// that no route, address, namespace, nameserver or other lab uses (checked
// under a machine-wide lock, RunDir/lock). The root namespace holds .1
// (Lab.HostAddr), so tests reach every lab address directly; the DC is .2,
// the client namespace .3 and targets .10 and up. Namespaces have no
// default route, so nothing in them can reach beyond the bridge.
//
// # Targets
//
// A target is smbd and nmbd with `server role = standalone server`, bound
// to its lab address, with every path (private, state, lock, cache, pid,
// ncalrpc, log) under its directory and a private /run/samba. ADMIN$
// (Target.AdminDir, C:\Windows) and C$ (Target.CDir) admit only the lab's
// admin group, which is also mapped to BUILTIN\Administrators. Host users
// and the group are created per lab and deleted at Close; each target has
// its own random passwords. Start waits until TCP 445 and an NBSTAT query
// answer (nmbd answers broadcast queries for its own name only a few
// seconds later, once its registration is over). A Bare target runs
// neither daemon: its namespace is for a test's own server, such as a
// rogue host that answers for another target's name.
//
// Targets log every authentication (log level auth_audit:3), and
// Target.FailedLogons reads back the failed ones: tests count what the
// targets saw, not what the client believes it sent. Variants change one
// setting each (guest only, signing mandatory, encryption required, NTLM
// disabled, SMB 3.0 or SMB 2.1 at most, SMB on TCP 139 only: SMB139Only,
// whose smbd serves SMB2/3 behind the NetBIOS session service while 445
// is closed; Target.SMBPort says which port a target's smbd answers).
//
// # Domain controller
//
// The DC is provisioned once per Samba version, lab code version, realm
// and domain into TemplateCacheDir (about 15 s; the password never
// expires). The computers for DCSpec.Computers are bulk-loaded once per
// count into a derived template with ldbmodify (about 5 s per 1,000 on an
// idle machine). Each lab copies the template, moves it to the lab's
// address (the DC's DNS A records are rewritten offline) and starts
// `samba -M single`, in about a second. Templates unused for three days
// are pruned. Its LDAPS certificate
// comes from a per-lab CA made in Go (DC.CAFile, DC.CAPool), with SANs for
// DC.Hostname and DC.Addr; simple binds need TLS
// (ldap server require strong auth = allow_sasl_over_tls). The DC serves
// DNS to the client namespace, whose resolv.conf then searches the realm
// as a domain member's does; DC.AddHostRecord adds an A record.
//
// # LAPS
//
// DCSpec.LAPS (opt-in) loads both LAPS schemas into a derived template,
// offline with ldbmodify and dsdb:schema update allowed: ms-Mcs-AdmPwd and
// ms-Mcs-AdmPwdExpirationTime, msLAPS-Password, msLAPS-EncryptedPassword
// and msLAPS-PasswordExpirationTime, with Microsoft's OIDs, syntaxes and
// search flags (the passwords are confidential, 904; the expiration
// times are not) and lab-chosen schemaIDGUIDs, added to the computer
// class. The same template holds OU=LAPS Lab, the "LAPS Readers" group
// with the technician lapsreader, the technician lapsdenied, and
// inheritable ACEs on the OU that grant the group read-property and
// control-access on the confidential attributes (what Windows LAPS's
// Set-LapsADReadPasswordPermission grants). DC.LAPS names them;
// DC.SetLAPS creates a computer in the OU and sets its attributes as the
// Administrator, and DC.DialLDAP binds as any lab account over LDAPS.
// Samba 4.17 has no GKDI server: tests serve GetKey with
// laps.KeyService (a synthetic root key) on winemu. Building the
// template takes about 8 s once; a lab start with it cached is as fast
// as without.
// # Kerberos lab
//
// Three options, off by default so that labs which do not need them start
// as fast as before, build a domain where NTLM is retired:
//
//   - DCSpec.NoNTLM sets `ntlm auth = disabled` on the DC; the lab then
//     administers it with Kerberos (samba-tool and net use
//     --use-kerberos=required).
//   - TargetSpec.DomainMember joins a target to the domain after the DC
//     is up: `security = ads`, an A record NAME.<realm> in the DC's DNS,
//     `net ads join` with that dnshostname (which also writes the HOST/
//     SPNs), then winbindd, which must reach the DC (wbinfo --ping-dc)
//     before smbd starts. Target.FQDN is its DNS name; cifs/FQDN tickets
//     from the DC are accepted by its smbd, and the domain Administrator
//     administers its ADMIN$ and C$. With Variant NTLMDisabled the member
//     refuses NTLM logons (STATUS_NTLM_BLOCKED). Members without a Name
//     are LCMEMBER0, LCMEMBER1, ... in every lab, so that the joined
//     state is cached: the first lab joins for real (about 9 s idle),
//     stops its DC for a moment and saves the DC's database and the
//     members' secrets.tdb as a member template next to the DC template;
//     later labs copy it, move the A records to their addresses and skip
//     the join (members ready in about 3 s, the whole Kerberos lab in
//     about 5 s; Timings.Members). Samba's smbclient caches name lookups
//     host-wide (gencache), across labs: give it -I ADDRESS.
//     Target.ExportKeytab writes a member's keys for one of its SPNs, for
//     a service that accepts Kerberos on its behalf.
//   - TargetSpec.ResidentRPC starts samba-dcerpcd as a daemon of its own
//     before smbd (rpc start on demand helpers = no), serving svcctl,
//     winreg, lsarpc and srvsvc (not the endpoint mapper: TCP 135 stays a
//     test's, for winemu), as Windows runs its RPC services. By default
//     smbd starts it on demand at the first pipe open and it exits after
//     about a minute idle, which costs several hundred ms of CPU per
//     respawn: fine for one target, the larger part of the lab's CPU for
//     64 (`make bench-bulk` uses resident daemons).
//   - DCSpec.ClockSkew runs samba under faketime (libfaketime), its clock
//     that far from the machine's, for clock-skew diagnoses; MIT kinit
//     with kdc_timesync = 0 then fails with "Clock skew too great".
//
// # Size and cost
//
// A lab has at most 200 targets. They start at most twice the CPUs at a
// time (at least 4): more at once only adds contention on a small
// machine. Lab.Timings says how long the start took; Lab.Usage sums the
// memory (RSS and PSS) and CPU time of every process in the lab's
// namespaces. `make bench-bulk` starts 64 targets with a winemu each and
// prints both (docs/design.md, issue 17 §3, has the figures).
//
// # State and cleanup
//
// Each lab records its owner PID, namespaces, links, users, groups, PIDs
// and directory in RunDir/labs/ID.json before creating each of them.
// Start cleans up every recorded lab whose owner is gone; `lab down` (the
// command in cmd/lab) cleans every recorded lab. Close kills tracked
// processes, then every process left in the lab's namespaces (such as
// samba-dcerpcd, which re-parents to PID 1), then deletes the rest.
package testlab
