// Package remotereg launches the applet through the target's Service
// Control Manager (MS-SCMR) and reads and writes its registry through the
// Remote Registry service (MS-RRP), both over SMB named pipes on the grant's
// existing session, with the SCM over ncacn_ip_tcp as a fallback.
//
// It implements deploy.Launcher. It does not copy files and does not decide
// between launchers: package session does.
package remotereg
